"""A newcomer's first hour, against the real parts: README's scripts under a real terminal, Ctrl-C, the
private daemon, a daemon without a bridge, an inherited ignored SIGINT, a daemon that goes away before kodev
can clean up, and the test suite after the Quick start's edits to examples/hello.

Every kodev here builds into a repository of this test's own and names its containers after it; what runs
the repository's own scripts (scripts/try, the test suite) runs in a scratch copy of this checkout, reusing
this virtualenv, so neither the repository nor the user's images are touched.

What README (and scripts/try, which README starts) tells a newcomer they will see is checked in kodev's human
text, as they read it: the error for published ports and the warning for the default network on a daemon
without a bridge, the unreachable daemon's error naming where kodev looked and the `export DOCKER_HOST=…`
line, the set-up's line for another terminal, and scripts/try's `watching` under a real terminal (it runs
`kodev watch` itself: no `--json` there). Where a test only needs to know what kodev did — a stage that ran
or did not, kodev noticing its daemon gone, the error it ended on, containers it reaped — it reads the
`--json` events (the versioned schema) instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kodev.network import has_bridge
from tests.conftest import REPO
from tests.examples import scratch_repo
from tests.integration.conftest import _missing, run_kodev
from tests.integration.json_events import Events, finished
from tests.integration.process import KodevProcess, fetch, free_port, wait_for_page, wait_until

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Own:
    """This test's names: a repository for its images, a prefix for its containers and services."""

    client: Any
    uid: str

    @property
    def repo(self) -> str:
        return f"kodev.test/nc-{self.uid}"

    def name(self, what: str) -> str:
        return f"nc-{self.uid}-{what}"

    def containers(self) -> list[dict[str, Any]]:
        return list(self.client.api.containers(all=True, filters={"name": f"nc-{self.uid}"}))

    def images(self) -> list[str]:
        return [tag for image in self.client.api.images() for tag in image.get("RepoTags") or []
                if tag.startswith(self.repo + "/")]


@pytest.fixture
def own(docker_client: Any) -> Iterator[Own]:
    import docker.errors

    names = Own(docker_client, uuid.uuid4().hex[:10])
    try:
        yield names
    finally:
        for container in names.containers():
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.remove_container(container["Id"], force=True)
        for tag in names.images():
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.remove_image(tag, force=True)


@pytest.fixture
def module(hello: Path, own: Own) -> Path:
    (hello / "kodev.toml").write_text(f'repo = "{own.repo}"\n')
    return hello


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# --- a daemon without a bridge ----------------------------------------------------------------------------

def test_published_port_without_a_bridge_is_an_error_before_anything_is_built(module: Path, own: Own) -> None:
    port = free_port()
    done = run_kodev(["run", "--name", own.name("p"), "-p", f"127.0.0.1:{port}:8080", "./cmd/hello"], module,
                     timeout=120)
    _no_traceback(done.stderr)
    if has_bridge(own.client):  # a Docker with its bridge (a developer's own): -p works, nothing is said
        assert done.returncode == 0, done.stderr
        assert "bridge" not in done.stderr
        return
    assert done.returncode == 1, done.stderr
    assert "error: kodev run: publishes" in done.stderr and f"127.0.0.1:{port}:8080/tcp" in done.stderr
    assert "--network host" in done.stderr
    # The same run with --json: the check comes before `go build` even starts.
    events = finished(run_kodev(["run", "--json", "--name", own.name("p"), "-p", f"127.0.0.1:{port}:8080",
                                 "./cmd/hello"], module, timeout=120))
    _no_traceback(events.stderr)
    assert events.returncode == 1 and f"127.0.0.1:{port}:8080/tcp" in events.error()["message"], events.output()
    assert events.all("build.started") == [] and own.images() == [], "something was built before the check"
    assert own.containers() == []


def test_ports_in_kodev_toml_without_a_bridge_are_an_error_naming_the_service(module: Path, own: Own) -> None:
    if has_bridge(own.client):
        _missing("a daemon without a bridge (the tests' private dockerd): this one has a bridge, so ports work")
    service = own.name("web")
    config = module / "kodev.toml"
    config.write_text(f'repo = "{own.repo}"\n[services.{service}]\ncommand = "./cmd/server"\n'
                      f'ports = ["127.0.0.1:{free_port()}:8080"]\n')
    done = run_kodev(["watch"], module, timeout=120)
    _no_traceback(done.stderr)
    assert done.returncode == 1, done.stderr
    assert f"{config}: services.{service}: publishes" in done.stderr
    assert 'network = "host"' in done.stderr
    assert own.images() == [] and own.containers() == []


def test_default_network_without_a_bridge_is_a_one_line_warning(module: Path, own: Own) -> None:
    done = run_kodev(["run", "--name", own.name("w"), "./cmd/hello", "--", "newcomer"], module, timeout=120)
    _no_traceback(done.stderr)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Hello, newcomer!"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    if has_bridge(own.client):
        assert warnings == []
    else:
        assert len(warnings) == 1, done.stderr
        assert "no bridge network" in warnings[0] and "--network host" in warnings[0]


# --- the daemon --------------------------------------------------------------------------------------------

def test_unreachable_daemon_names_the_private_dockerd_and_the_line_to_use_it(module: Path, tmp_path: Path) -> None:
    host = os.environ.get("DOCKER_HOST", "")
    if not (host.startswith("unix://") and host.endswith("/docker.sock")):
        _missing("a private dockerd on a socket of its own (scripts/env.sh's) as this session's daemon")
    missing = f"unix://{tmp_path}/missing.sock"
    done = run_kodev(["build", "./cmd/hello"], module,
                     {"DOCKER_HOST": missing, "KODEV_DOCKERD_DIR": str(Path(host.removeprefix("unix://")).parent)})
    _no_traceback(done.stderr)
    assert done.returncode == 1, done.stderr
    assert f"Tried {missing} (from DOCKER_HOST)." in done.stderr
    assert f"`export DOCKER_HOST={host}`" in done.stderr


# --- signals ------------------------------------------------------------------------------------------------

def test_watch_outside_a_go_module_says_so(tmp_path: Path, go_binary: str, docker_client: Any) -> None:
    done = finished(run_kodev(["watch", "--json"], tmp_path, timeout=60))
    assert done.returncode == 1, done.output()
    message = done.error()["message"]
    assert re.search(rf"^no go\.mod in {re.escape(str(tmp_path))} .* kodev watch works inside a Go module", message), \
        message
    said = [e for e in done.events if "built-in defaults" in e.get("text", "") + e.get("message", "")]
    assert said == [] and "Traceback" not in done.stderr, done.output()


def test_inherited_ignored_sigint_still_stops_kodev_and_cleans_up(module: Path, own: Own) -> None:
    port = free_port()
    name = own.name("nohup")
    proc = KodevProcess(["run", "--network", "host", "--name", name, "--stop-timeout", "3", "./cmd/server", "--",
                         "-addr", f"127.0.0.1:{port}"], module, ignore_sigint=True)  # as `nohup kodev … &`
    try:
        try:
            wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.output()}") from None
        assert [c["Names"] for c in own.containers()] == [[f"/{name}"]]
        code = proc.stop(signal.SIGINT, timeout=60)
        assert code == 0, f"exit code {code}\n{proc.output()}"
        assert own.containers() == [], f"container left behind\n{proc.output()}"
        assert fetch(f"http://127.0.0.1:{port}/") is None
        _no_traceback(proc.output())
    finally:
        proc.kill()


# --- the scripts ----------------------------------------------------------------------------------------------

def _venv_env() -> dict[str, str]:
    """This session's environment, with this virtualenv active (env.sh then installs nothing)."""
    venv = sys.prefix
    stamp = Path(venv) / ".kodev-installed"
    wanted = subprocess.run(["cksum"], stdin=(REPO / "pyproject.toml").open("rb"), capture_output=True, text=True,
                            check=True).stdout.strip()
    if sys.prefix == sys.base_prefix or not stamp.exists() or stamp.read_text().strip() != wanted:
        pytest.fail(f"the scripts' tests need this virtualenv ({venv}) set up by scripts/env.sh (its install stamp "
                    "is missing or stale): run them through scripts/test, or `. scripts/env.sh` once",
                    pytrace=False)
    return {**os.environ, "VIRTUAL_ENV": venv, "PATH": f"{venv}/bin:{os.environ.get('PATH', '')}"}


def test_sourcing_env_sh_keeps_the_shells_options(docker_client: Any) -> None:
    script = (f'set -u; . {REPO}/scripts/env.sh; echo "flags=$-"; set -o | grep -E "^(errexit|pipefail)";'
              ' false; echo "still here"; echo "line=$KODEV_SHELL_LINE"')
    done = subprocess.run(["bash", "-c", script], env=_venv_env(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    flags = next(line for line in lines if line.startswith("flags="))
    assert "u" in flags and "e" not in flags, flags  # -u kept, no -e left behind
    assert re.search(r"^errexit\s+off$", done.stdout, re.M) and re.search(r"^pipefail\s+off$", done.stdout, re.M)
    assert "still here" in lines  # a failing command after sourcing does not end the shell
    line = next(line for line in lines if line.startswith("line="))
    assert line.endswith(f". {REPO}/scripts/env.sh")
    assert "another terminal gets this environment with:" in done.stderr
    if os.environ.get("DOCKER_HOST"):
        assert f"export DOCKER_HOST={os.environ['DOCKER_HOST']};" in line


class Terminal:
    """A program under a real pseudo-terminal: its controlling terminal, so ^C is the terminal's SIGINT."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                        start_new_session=True, preexec_fn=_take_terminal)
        os.close(slave)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every process holding the terminal is gone
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    def text(self) -> str:
        with self._lock:
            return ANSI.sub("", b"".join(self._chunks).decode(errors="replace")).replace("\r", "")

    def wait_for(self, pattern: str, timeout: float) -> None:
        wait_until(lambda: re.search(pattern, self.text(), re.M), timeout,
                   lambda: f"{pattern!r} not seen (exited={self.process.poll()}):\n{self.text()}")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def state(self) -> str:
        """What decides where a ^C goes: the terminal's foreground group, the shell's, and ISIG."""
        isig = bool(termios.tcgetattr(self.master)[3] & termios.ISIG)
        return (f"foreground group {os.tcgetpgrp(self.master)}, the shell's {os.getpgid(self.process.pid)}, "
                f"ISIG {isig}")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.master)


def _take_terminal() -> None:
    # After setsid (start_new_session): make the pty, already on fd 0, this session's controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # As a terminal's shell runs its foreground job: SIGINT at its default, even when pytest was started in
    # the background (`… &`), which makes it ignored for every child (the ^C test then failed, seen in CI).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_scripts_try_under_a_terminal_ctrl_c_leaves_nothing_and_the_daemon_up(
        tmp_path: Path, own: Own, go_binary: str) -> None:
    scratch = scratch_repo(tmp_path / "repo")
    port, service = free_port(), own.name("server")
    (scratch / "examples" / "hello" / "kodev.toml").write_text(
        f'repo = "{own.repo}"\n\n[services.{service}]\ncommand = "./cmd/server"\n'
        f'args = ["-addr", "127.0.0.1:{port}"]\nnetwork = "host"\nstop_timeout = 3\n\n[commands."./cmd/hello"]\n')
    terminal = Terminal([str(scratch / "scripts" / "try")], scratch, _venv_env())
    try:
        terminal.wait_for(r"^watching ", timeout=300)
        wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=60)
        assert [c["Names"] for c in own.containers()] == [[f"/{service}"]]
        terminal.ctrl_c()
        code = terminal.process.wait(timeout=60)
        output = terminal.text()
        assert code == 0, f"kodev exited {code}:\n{output}"
        assert own.containers() == [], f"a kodev container remains:\n{output}"
        assert own.client.ping(), "the Docker daemon no longer answers"
        _no_traceback(output)
        assert "another terminal gets this environment with:" in output
        assert f". {scratch}/scripts/env.sh" in output
    finally:
        terminal.close()


# Rows of README's Quick start table, made to the scratch copy's examples/hello and left in place.
README_EDITS = {
    "internal/greeting/greeting.go": ('"Hello, "', '"Howdy, "'),
    "assets/banner.txt": ("", "edited banner\n"),
    "internal/greeting/greeting.go#comment": ("// Message is", "// Message (edited) is"),
    "cmd/server/main.go": ("package main", "package main\n\nthis does not compile"),
}


def test_the_suite_passes_with_the_quick_start_edits_left_in_the_example(tmp_path: Path, go_binary: str,
                                                                         docker_client: Any) -> None:
    scratch = scratch_repo(tmp_path / "repo")
    example = scratch / "examples" / "hello"
    for key, (old, new) in README_EDITS.items():
        path = example / key.split("#")[0]
        text = path.read_text()
        assert old in text, f"README's edit to {key} no longer applies to examples/hello"
        path.write_text(text.replace(old, new, 1) if old else text + new)
    # Tests that assert the example's own output: they fail if a copy of the edited example reached them.
    chosen = ["tests/integration/test_build.py::test_config_is_found_in_a_parent_directory",
              "tests/integration/test_watch_stopping.py::test_sigint_stops_and_removes_everything"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *chosen],
                          cwd=scratch, env={**os.environ, "KODEV_REQUIRE_REAL": "1"}, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "2 passed" in done.stdout, done.stdout


def _sleeping_in(session: int) -> bool:
    """Whether `sleep 600` runs in the process group `session` leads."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == session and command == b"sleep\x00600\x00":
            return True
    return False


def test_a_private_dockerd_started_by_env_sh_survives_the_terminals_ctrl_c(go_binary: str) -> None:
    """The dockerd env.sh starts is in a session of its own: a Ctrl-C in the terminal that started it (which
    reaches everything in the terminal's foreground process group) leaves it running for the next kodev."""
    import shutil
    import tempfile

    import docker

    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        _missing("root and dockerd (to start a private dockerd as scripts/env.sh does)")
    # A short path: the unix sockets under it must stay within the 108-byte limit.
    directory = Path(tempfile.mkdtemp(prefix="kodev-dd-", dir="/tmp"))
    env = {**_venv_env(), "KODEV_DOCKERD_DIR": str(directory), "DOCKER_HOST": f"unix://{directory}/none.sock"}
    terminal = Terminal(["bash", "-c", f". {REPO}/scripts/env.sh; echo SET-UP-DONE; sleep 600"], REPO, env)
    pid = 0
    try:
        terminal.wait_for("^SET-UP-DONE$", timeout=120)
        assert "private dockerd is up" in terminal.text(), terminal.text()
        pid = int((directory / "dockerd.pid").read_text())
        # ^C once the shell waits on `sleep` in the foreground.
        wait_until(lambda: _sleeping_in(terminal.process.pid), 30, terminal.text)
        terminal.ctrl_c()
        try:
            code = terminal.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the shell did not get the terminal's SIGINT ({terminal.state()}):\n"
                                 f"{terminal.text()}") from None
        assert code != 0, "the shell did not get the terminal's SIGINT"
        client = docker.DockerClient(base_url=f"unix://{directory}/docker.sock", timeout=30)
        try:
            answers = bool(client.ping())
        except Exception:
            answers = False
        finally:
            client.close()
        assert answers, f"the private dockerd died with the terminal's Ctrl-C:\n{terminal.text()}"
    finally:
        terminal.close()
        if pid and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), 60,
                       "the test's private dockerd did not stop")
        shutil.rmtree(directory, ignore_errors=True)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


# --- the daemon gone while kodev cleans up --------------------------------------------------------------------

class PrivateDockerd:
    """A dockerd of this test's own, started as scripts/env.sh starts one: a session of its own, no bridge, no
    iptables rules. Its directory is short: the unix sockets under it must stay within the 108-byte limit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.host = f"unix://{directory}/docker.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.directory / "dockerd.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["dockerd", "--host", self.host, "--data-root", f"{self.directory}/data", "--exec-root",
                 f"{self.directory}/exec", "--pidfile", f"{self.directory}/dockerd.pid", "--bridge=none",
                 "--iptables=false", "--ip6tables=false"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        wait_until(self.answers, 60, lambda: f"the test's dockerd did not come up:\n{self.log()}")

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=30)

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the test's dockerd exited with {self.process.returncode}:\n{self.log()}")
        try:
            client = self.client()  # asks the daemon its version
        except Exception:
            return False
        try:
            return bool(client.ping())
        except Exception:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM, by its pidfile, as a daemon going away is stopped: it stops its containers, then exits."""
        if self.process is None or self.process.poll() is not None:
            return
        assert int((self.directory / "dockerd.pid").read_text()) == self.process.pid
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the test's dockerd did not stop on SIGTERM:\n{self.log()}") from None

    def log(self) -> str:
        return "\n".join((self.directory / "dockerd.log").read_text(errors="replace").splitlines()[-20:])

    def remove(self) -> None:
        """Unmount what the daemon left mounted under its directory (deepest first), then remove it."""
        import shutil

        self.stop()
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{self.directory}/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_dockerd() -> Iterator[PrivateDockerd]:
    import shutil
    import tempfile

    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        _missing("root and dockerd (to start a private dockerd as scripts/env.sh does)")
    daemon = PrivateDockerd(Path(tempfile.mkdtemp(prefix="kodev-dd-", dir="/tmp")))
    try:
        yield daemon
    finally:
        daemon.remove()


def test_daemon_gone_at_cleanup_kodev_names_what_it_left_exits_1_and_the_next_kodev_removes_it(
        hello: Path, private_dockerd: PrivateDockerd) -> None:
    """The daemon goes away (SIGTERM: it stops its containers, then exits) while kodev runs; then Ctrl-C.

    `kodev run --watch`, not plain `kodev run`: plain `kodev run` ends on its own when the daemon stops its
    container (the log stream ends with the container's exit code), before any Ctrl-C, so it would never
    clean up against a missing daemon. The watch loop stays up when its container exits and its daemon is gone,
    as a developer's session does, and the Ctrl-C then finds no daemon to clean up with. The container the
    daemon stopped is still in its data when it comes back, as 'exited', labelled with a kodev that is gone."""
    daemon = private_dockerd
    env = {"DOCKER_HOST": daemon.host}
    name, port = f"nc-{uuid.uuid4().hex[:10]}-gone", free_port()
    daemon.start()
    proc = KodevProcess(["run", "--watch", "--json", "--network", "host", "--name", name, "--stop-timeout", "3",
                         "./cmd/server", "--", "-addr", f"127.0.0.1:{port}"], hello, env)
    events = Events(proc)
    try:
        try:
            wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.output()}") from None
        daemon.stop()
        events.wait("daemon.lost", timeout=30)  # kodev noticed, and is still up
        assert proc.process.poll() is None, proc.output()
        code = proc.stop(signal.SIGINT, timeout=60)
        assert events.wait("exit", timeout=10)["code"] == code == 1, f"exit code {code}\n{proc.output()}"
        output = proc.output()
        _no_traceback(output)
        errors = [e["message"] for e in events.errors()]
        assert len(errors) == 1, output
        assert "cannot list kodev's containers to clean up" in errors[0], output
        assert f"Left behind: {name};" in errors[0] and "the next kodev removes them" in errors[0], output
    finally:
        proc.kill()

    daemon.start()
    client = daemon.client()
    try:
        left = client.api.containers(all=True, filters={"name": name})
        assert [(c["Names"], c["State"]) for c in left] == [([f"/{name}"], "exited")], left
        done = finished(run_kodev(["run", "--json", "--network", "host", "--name", f"{name}-next", "./cmd/hello", "--",
                                   "again"], hello, env, timeout=120))
        _no_traceback(done.stderr)
        assert done.returncode == 0, done.output()
        assert [e["line"] for e in done.all("service.log")] == ["Hello, again!"], done.output()
        assert done.all("message", lambda e: f"removed containers left by a kodev that is gone: {name}" in e["text"]), \
            done.output()
        assert client.api.containers(all=True, filters={"name": name}) == []
    finally:
        client.close()
