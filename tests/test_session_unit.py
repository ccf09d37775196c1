"""The composition around a session: which kodev.toml tables apply to a command, what `kodev watch` runs,
config reload, image tag splitting, and whether the kodev owning a container is still alive.

`watch_targets` and `reload` run the real `go` (it resolves the commands) on a copy of examples/hello; no
daemon is needed for them, so the session's daemon and publisher are left out (never used on these paths).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kodev import config as config_stage
from kodev.config import BuildSettings, CommandConfig, Config
from kodev.daemon import _split_tag
from kodev.errors import ConfigError
from kodev.gomod import MainPackage
from kodev.gotool import TOOLCHAIN_GOGC, GoTool, find_go, toolchain_gc
from kodev.ownership import OWNER_HOST_LABEL, OWNER_PID_LABEL, OWNER_START_LABEL, Owner, owner_alive
from kodev.plan import _command_config
from kodev.session import Session
from tests.examples import copy_example
from tests.fakes import offline_session
from tests.integration.conftest import _missing

# --- _command_config: every table naming a command, by path or import path, merged ---------------------

SERVER = "example.com/m/cmd/server"


def command(root: Path, name: str = "server") -> MainPackage:
    return MainPackage(import_path=f"example.com/m/cmd/{name}", dir=(root / "cmd" / name).resolve(),
                       module_path="example.com/m", module_dir=root.resolve())


def test_command_config_none_without_a_table(tmp_path: Path) -> None:
    config = Config(root=tmp_path, commands={"./cmd/other": CommandConfig("./cmd/other", base="x")})
    assert _command_config(config, command(tmp_path)) is None


@pytest.mark.parametrize("key", ["./cmd/server", "./cmd/../cmd/server", SERVER, f"ko://{SERVER}", "ko://./cmd/server"])
def test_command_config_by_path_or_import_path(tmp_path: Path, key: str) -> None:
    table = CommandConfig(key, image="srv")
    config = Config(root=tmp_path, commands={key: table, "./cmd/other": CommandConfig("./cmd/other", image="no")})
    assert _command_config(config, command(tmp_path)) == (key, table)


def test_command_config_tables_by_path_and_import_path_are_merged_later_winning(tmp_path: Path) -> None:
    by_path = CommandConfig("./cmd/server", base="base-a", image="srv",
                            build=BuildSettings(env=("A=1",), flags=("-trimpath",)))
    by_import = CommandConfig(SERVER, base="base-b", build=BuildSettings(flags=("-race",), ldflags=("-s",)))
    config = Config(root=tmp_path, commands={"./cmd/server": by_path, SERVER: by_import})
    found = _command_config(config, command(tmp_path))
    assert found is not None
    key, merged = found
    assert key == "./cmd/server"  # errors name the first table
    assert merged.base == "base-b" and merged.image == "srv"  # set later: wins; unset later: kept
    assert merged.build == BuildSettings(env=("A=1",), flags=("-race",), ldflags=("-s",))


def test_command_config_relative_keys_resolve_against_the_config_not_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = Config(root=tmp_path, commands={"./cmd/server": CommandConfig("./cmd/server", image="srv")})
    assert _command_config(config, command(tmp_path)) is not None


# --- Session.watch_targets and reload (the real go resolves the commands) ------------------------------

HELLO_MODULE = "example.com/hello"


@pytest.fixture
def go() -> GoTool:
    if shutil.which(os.environ.get("KODEV_GO", "go")) is None:
        _missing("a Go toolchain (`go` on PATH)")
    return find_go(None, {})


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    copy_example("hello", target)
    return target


def session(cwd: Path, go: GoTool, config: Config | None = None) -> Session:
    return offline_session(cwd, go, config)


def targets(found: Session, paths: list[str]) -> dict[str, list[str]]:
    """import path -> the services that run it."""
    return {c.plan.command.import_path: [s.service for s in c.specs] for c in found.watch_targets(paths)}


def test_watch_targets_from_the_config(hello: Path, go: GoTool) -> None:
    # examples/hello: [services.server] runs ./cmd/server; [commands."./cmd/hello"] is image only.
    assert targets(session(hello, go), []) == {f"{HELLO_MODULE}/cmd/server": ["server"],
                                               f"{HELLO_MODULE}/cmd/hello": []}


def test_a_command_named_on_the_command_line_runs_as_a_service_named_after_it(hello: Path, go: GoTool) -> None:
    found = session(hello, go).watch_targets(["./cmd/hello"])
    assert [c.plan.command.import_path for c in found] == [f"{HELLO_MODULE}/cmd/hello"]
    [spec] = found[0].specs
    assert (spec.service, spec.command) == ("hello", "./cmd/hello")


def test_given_paths_narrow_the_config_and_keep_its_services(hello: Path, go: GoTool) -> None:
    assert targets(session(hello, go), ["./cmd/server"]) == {f"{HELLO_MODULE}/cmd/server": ["server"]}
    assert targets(session(hello, go), [f"ko://{HELLO_MODULE}/cmd/server"]) == {
        f"{HELLO_MODULE}/cmd/server": ["server"]}


def test_watch_targets_config_paths_are_relative_to_the_config(hello: Path, go: GoTool) -> None:
    # Run from a subdirectory: the config's "./cmd/server" still means hello/cmd/server.
    config = config_stage.load(None, hello / "cmd")
    assert config.path == hello / "kodev.toml"
    assert set(targets(session(hello / "cmd", go, config), [])) == {f"{HELLO_MODULE}/cmd/server",
                                                                    f"{HELLO_MODULE}/cmd/hello"}


def test_nothing_to_watch_without_go_running(tmp_path: Path) -> None:
    no_go = GoTool("/nonexistent/go", {})  # these errors come before any go command
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match=r"no go\.mod in"):
        session(tmp_path / "plain", no_go, Config(root=tmp_path / "plain")).watch_targets([])
    (tmp_path / "plain" / "go.mod").write_text("module example.com/plain\n")
    with pytest.raises(ConfigError, match="nothing to watch"):
        session(tmp_path / "plain", no_go, Config(root=tmp_path / "plain")).watch_targets([])


def test_reload_returns_a_new_session_and_leaves_this_one(hello: Path, go: GoTool) -> None:
    current = session(hello, go)
    assert current.reload([]) is None  # same file: nothing to do
    config_file = hello / "kodev.toml"
    config_file.write_text(config_file.read_text().replace("[commands.\"./cmd/hello\"]\n", ""))
    reloaded = current.reload([])
    assert reloaded is not None
    fresh, commands = reloaded
    assert fresh is not current and fresh.builder is not current.builder and fresh.builder.config == fresh.config
    assert list(fresh.config.commands) == [] and list(current.config.commands) == ["./cmd/hello"]
    assert [c.plan.command.import_path for c in commands] == [f"{HELLO_MODULE}/cmd/server"]
    config_file.write_text("repo = 42\n")
    with pytest.raises(ConfigError, match="repo"):
        current.reload([])
    assert list(current.config.commands) == ["./cmd/hello"]


# --- _split_tag ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "split"), [
    ("alpine:3.20", ("alpine", "3.20")),
    ("alpine", ("alpine", "latest")),
    ("example.com/team/app:v1", ("example.com/team/app", "v1")),
    ("localhost:5000/app", ("localhost:5000/app", "latest")),  # a registry port is not a tag
    ("localhost:5000/app:dev", ("localhost:5000/app", "dev")),
    ("alpine@sha256:" + "0" * 64, ("alpine", "sha256:" + "0" * 64)),
    ("localhost:5000/app:dev@sha256:" + "1" * 64, ("localhost:5000/app:dev", "sha256:" + "1" * 64)),
])
def test_split_tag(ref: str, split: tuple[str, str]) -> None:
    assert _split_tag(ref) == split


# --- owner_alive ---------------------------------------------------------------------------------------

def labels(host: str, pid: int | str, start: str) -> dict[str, str]:
    return {OWNER_HOST_LABEL: host, OWNER_PID_LABEL: str(pid), OWNER_START_LABEL: start}


def test_this_process_is_alive() -> None:
    me = Owner.current()
    assert me.start  # Linux: read from /proc
    assert owner_alive(me.labels())


def test_a_dead_pid_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid is free
    assert not owner_alive(labels(socket.gethostname(), child.pid, ""))


def test_a_reused_pid_with_another_start_time_is_not_alive() -> None:
    me = Owner.current()
    assert not owner_alive(labels(me.host, me.pid, str(int(me.start) + 1)))
    assert owner_alive(labels(me.host, me.pid, ""))  # no start recorded: the pid alone decides


def test_another_hosts_kodev_counts_as_alive() -> None:
    assert owner_alive(labels(socket.gethostname() + "-elsewhere", 999_999_999, "1"))


def test_unreadable_owner_labels_are_not_alive() -> None:
    assert not owner_alive(labels(socket.gethostname(), "not-a-pid", ""))
    assert not owner_alive({OWNER_HOST_LABEL: socket.gethostname()})


def test_the_toolchain_collects_garbage_less_often_unless_the_user_says_how() -> None:
    tuned = toolchain_gc({})
    assert tuned["GOGC"] == TOOLCHAIN_GOGC
    limit = int(tuned["GOMEMLIMIT"].removesuffix("MiB"))
    assert 0 < limit * (1 << 20) <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    assert toolchain_gc({"GOMEMLIMIT": "1GiB"}) == {"GOGC": TOOLCHAIN_GOGC}  # theirs stays, in os.environ
    assert toolchain_gc({"GOGC": "off"}) == {}  # their GOGC rules alone
    go = find_go(None, {})
    if "GOGC" in os.environ:
        assert "GOGC" not in go.env
    else:
        assert go.env["GOGC"] == TOOLCHAIN_GOGC
