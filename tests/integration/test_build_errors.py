"""`kodev build` on bad input: exit code 1, one clear `error:` naming the culprit, no traceback, empty stdout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_kodev

HELLO = "example.com/hello/cmd/hello"
SERVER = "example.com/hello/cmd/server"


def assert_fails(done: subprocess.CompletedProcess[str], *culprits: str) -> None:
    """A user error: exit code 1, `error:` on stderr naming every culprit, no traceback, nothing on stdout."""
    assert done.returncode == 1, f"exit code {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "error:" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "", done.stdout
    for culprit in culprits:
        assert culprit in done.stderr, f"{culprit!r} not named in:\n{done.stderr}"


def kodev_build(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A bad input must end in an error, never a hang: a short timeout makes a hang a failure.
    return run_kodev(["build", *args], cwd, env, timeout=90)




# --- paths ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["./cmd/nope", "example.com/hello/cmd/nope", "ko://example.com/hello/cmd/nope"])
def test_path_that_does_not_exist(hello: Path, path: str) -> None:
    done = kodev_build([path], hello)
    assert_fails(done, path)
    assert "go get" not in done.stderr  # Go's advice would fetch a module; the path is mistyped instead


def test_path_that_is_a_file(hello: Path) -> None:
    assert_fails(kodev_build(["./cmd/hello/main.go"], hello), "cmd/hello/main.go")


@pytest.mark.parametrize("path", ["./internal/greeting", "example.com/hello/internal/greeting"])
def test_package_that_is_not_main(hello: Path, path: str) -> None:
    done = kodev_build([path], hello)
    assert_fails(done, path, "package main")


@pytest.mark.parametrize("args", [["./cmd/...", "./internal/greeting"], ["./internal/greeting", "./cmd/..."]])
def test_package_that_is_not_main_next_to_a_wildcard(hello: Path, args: list[str]) -> None:
    """Regression: after `./cmd/...` the non-main path used to be dropped and the commands built."""
    assert_fails(kodev_build(args, hello), "./internal/greeting", "not `package main`")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory with a `package main` in it, next to the module copy rather than inside it."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "main.go").write_text("package main\n\nfunc main() {}\n")
    return directory


def test_path_outside_the_module(hello: Path, outside: Path) -> None:
    assert_fails(kodev_build([str(outside)], hello), str(outside))


def test_path_outside_the_module_after_one_inside(hello: Path, outside: Path) -> None:
    assert_fails(kodev_build(["./cmd/hello", str(outside)], hello), str(outside))


def test_relative_path_outside_the_module(hello: Path, outside: Path) -> None:
    assert_fails(kodev_build(["../outside"], hello), "outside")


def test_path_in_another_module_outside_this_one(hello: Path, tmp_path: Path, repo: str) -> None:
    """Run inside hello, name a command of an unrelated module next to it: kodev must refuse, as it says
    ('kodev builds commands of the module ... it runs in'), instead of building it with hello's settings."""
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')  # should kodev build it anyway, clean it up
    other = tmp_path / "other"
    (other / "cmd" / "x").mkdir(parents=True)
    (other / "go.mod").write_text("module example.com/other\n\ngo 1.22\n")
    (other / "cmd" / "x" / "main.go").write_text("package main\n\nfunc main() {}\n")
    assert_fails(kodev_build([str(other / "cmd" / "x")], hello), str(other / "cmd" / "x"))


# --- compiling -----------------------------------------------------------------------------------------

def test_compile_error_shows_the_compiler_output(hello: Path, go_binary: str) -> None:
    main_go = hello / "cmd" / "hello" / "main.go"
    source = main_go.read_text()
    main_go.write_text(source + "\nfunc broken() { _ = notDefinedAnywhere }\n")
    line = len(source.splitlines()) + 2
    done = kodev_build(["./cmd/hello"], hello)
    assert_fails(done, HELLO)
    assert re.search(rf"main\.go:{line}:\d+: undefined: notDefinedAnywhere", done.stderr), done.stderr
    # The compiler's own lines, exactly as `go build` prints them.
    own = subprocess.run([go_binary, "build", "-trimpath", "-o", os.devnull, "./cmd/hello"], cwd=hello,
                         capture_output=True, text=True, check=False,
                         env={**os.environ, "CGO_ENABLED": "0"})
    assert own.returncode != 0
    for compiler_line in own.stderr.splitlines():
        assert compiler_line in done.stderr.splitlines(), f"{compiler_line!r} missing from:\n{done.stderr}"


def test_go_not_found_with_the_go_flag(hello: Path) -> None:
    done = kodev_build(["--go", "/nonexistent/go", "./cmd/hello"], hello)
    assert_fails(done, "/nonexistent/go")
    assert "install" in done.stderr.lower()


def test_go_not_found_on_path(hello: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "KODEV_GO"}
    env["PATH"] = str(empty)
    done = subprocess.run([sys.executable, "-m", "kodev", "build", "./cmd/hello"], cwd=hello, env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    assert_fails(done, "PATH", "KODEV_GO", "--go")
    assert "install" in done.stderr.lower()


# --- the Docker daemon ---------------------------------------------------------------------------------

def test_docker_daemon_not_reachable_on_a_socket(hello: Path, tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/missing-{uuid.uuid4().hex[:8]}.sock"
    done = kodev_build(["./cmd/hello"], hello, {"DOCKER_HOST": endpoint})
    assert_fails(done, endpoint)
    assert "start" in done.stderr.lower()


def test_docker_daemon_not_reachable_over_tcp(hello: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    done = kodev_build(["./cmd/hello"], hello, {"DOCKER_HOST": endpoint})
    assert_fails(done, endpoint)


# --- kodev.toml ----------------------------------------------------------------------------------------

def test_malformed_toml(hello: Path) -> None:
    config = hello / "kodev.toml"
    config.write_text('base = "static"\nrepo = \n')
    assert_fails(kodev_build(["./cmd/hello"], hello), str(config), "line 2")


@pytest.mark.parametrize(("text", "key"), [
    ("bogus = 1\n", "bogus"),
    ("[build]\nflagz = []\n", "build.flagz"),
    ('[commands."./cmd/hello"]\nimag = "x"\n', "imag"),
])
def test_unknown_key(hello: Path, text: str, key: str) -> None:
    config = hello / "kodev.toml"
    config.write_text(text)
    assert_fails(kodev_build(["./cmd/hello"], hello), str(config), key)


@pytest.mark.parametrize(("text", "key"), [
    ("repo = 5\n", "repo"),
    ('[build]\nldflags = "-s -w"\n', "build.ldflags"),
    ('[commands."./cmd/hello"]\nimage = 3\n', "image"),
    ("base = true\n", "base"),
])
def test_wrong_type(hello: Path, text: str, key: str) -> None:
    config = hello / "kodev.toml"
    config.write_text(text)
    done = kodev_build(["./cmd/hello"], hello)
    assert_fails(done, str(config), key)
    assert "expected" in done.stderr


def test_config_flag_naming_a_missing_file(hello: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.toml"
    assert_fails(kodev_build(["--config", str(missing), "./cmd/hello"], hello), str(missing))


# --- kodata --------------------------------------------------------------------------------------------

def test_kodata_symlink_escaping_the_module(hello: Path) -> None:
    link = hello / "cmd" / "server" / "kodata" / "host"
    link.symlink_to("/etc/hostname")
    assert_fails(kodev_build(["./cmd/server"], hello), str(link), "/etc/hostname")


def test_kodata_relative_symlink_escaping_the_module(hello: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for images\n")
    link = hello / "cmd" / "server" / "kodata" / "secret.txt"
    link.symlink_to("../../../../secret.txt")
    assert link.resolve() == secret.resolve()
    assert_fails(kodev_build(["./cmd/server"], hello), str(link))


def test_kodata_symlink_loop(hello: Path) -> None:
    kodata = hello / "cmd" / "server" / "kodata"
    (kodata / "loop-a").symlink_to("loop-b")
    (kodata / "loop-b").symlink_to("loop-a")
    done = kodev_build(["./cmd/server"], hello)
    assert_fails(done, str(kodata / "loop-a"))
    assert "loop" in done.stderr


def test_kodata_directory_symlink_loop(hello: Path) -> None:
    link = hello / "cmd" / "server" / "kodata" / "static" / "up"
    link.symlink_to("..")
    done = kodev_build(["./cmd/server"], hello)
    assert_fails(done, str(link))
    assert "loop" in done.stderr


def test_kodata_dangling_symlink(hello: Path) -> None:
    link = hello / "cmd" / "server" / "kodata" / "gone.txt"
    link.symlink_to("does-not-exist.txt")
    assert_fails(kodev_build(["./cmd/server"], hello), str(link))


# --- image names ---------------------------------------------------------------------------------------

def test_two_commands_configured_with_one_image_name(hello: Path) -> None:
    config = hello / "kodev.toml"
    config.write_text('[commands."./cmd/hello"]\nimage = "same"\n[commands."./cmd/server"]\nimage = "same"\n')
    done = kodev_build(["./cmd/hello", "./cmd/server"], hello)
    assert_fails(done, HELLO, SERVER, "kodev.local/same", str(config))


def test_two_commands_with_one_default_name(hello: Path) -> None:
    other = hello / "tools" / "hello"
    other.mkdir(parents=True)
    (other / "main.go").write_text("package main\n\nfunc main() {}\n")
    done = kodev_build(["./cmd/hello", "./tools/hello"], hello)
    assert_fails(done, HELLO, "example.com/hello/tools/hello", "kodev.local/hello", "image")


# --- a failed build changes nothing ----------------------------------------------------------------------

def test_a_failed_compile_leaves_the_existing_tag_alone(hello: Path, repo: str, docker_client: Any) -> None:
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    ref = f"{repo}/hello:latest"
    good = run_kodev(["build", "./cmd/hello"], hello)
    assert good.returncode == 0, good.stderr
    before = docker_client.api.inspect_image(ref)["Id"]
    greeting = hello / "internal" / "greeting" / "greeting.go"
    greeting.write_text(greeting.read_text() + "\nvar _ = undefinedAfterAll\n")
    assert_fails(kodev_build(["./cmd/hello"], hello), "undefinedAfterAll")
    assert docker_client.api.inspect_image(ref)["Id"] == before


def test_a_failed_image_assembly_leaves_the_existing_tag_alone(hello: Path, repo: str,
                                                                docker_client: Any) -> None:
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    ref = f"{repo}/server:latest"
    good = run_kodev(["build", "./cmd/server"], hello)
    assert good.returncode == 0, good.stderr
    before = docker_client.api.inspect_image(ref)["Id"]
    # The source changes (a new binary) and kodata gains a link that escapes: the build must fail whole.
    greeting = hello / "internal" / "greeting" / "greeting.go"
    greeting.write_text(greeting.read_text().replace('"Hello, "', '"Howdy, "'))
    link = hello / "cmd" / "server" / "kodata" / "host"
    link.symlink_to("/etc/hostname")
    assert_fails(kodev_build(["./cmd/server"], hello), str(link))
    assert docker_client.api.inspect_image(ref)["Id"] == before
