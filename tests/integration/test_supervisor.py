"""kodev's supervisor as PID 1 of a real container: signals forwarded, exit codes passed through, orphans
reaped, the app restarted on a new binary (bind mount and copy, asked through the control channel on stdin
or the restart signal) — against the real daemon and real Go.

The app (supervisor_app/main.go) answers its version and pid, exits on request, spawns an orphan, lists
zombies, and shuts down gracefully on SIGTERM with a chosen exit code. It runs in an image kodev builds.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kodev.containers import ContainerError
from kodev.deliver.container_user import ContainerUser, container_user
from kodev.deliver.supervision import COPY_DIR, RESTART_SIGNAL, SUPERVISOR, ControlChannel, SwapKit, build_supervisor
from kodev.deliver.swap import put_copy_dir
from kodev.gotool import find_go
from tests.integration.conftest import run_kodev
from tests.integration.process import fetch, free_port, wait_for_page, wait_until
from tests.integration.refusals import Refusals

APP = Path(__file__).resolve().parent / "supervisor_app" / "main.go"


@dataclass(frozen=True)
class Rig:
    client: Any
    image: str
    supervisor: Path
    module: Path
    go: str

    def binary(self, version: str, crash: str = "", listen: str = "") -> Path:
        out = self.module / f"app-{version}{'-crash' if crash else ''}"
        flags = (f"-X main.version={version}" + (f" -X main.crash={crash}" if crash else "")
                 + (f" -X main.listen={listen}" if listen else ""))
        subprocess.run([self.go, "build", "-trimpath", f"-ldflags={flags}", "-o", str(out), "./cmd/app"],
                       cwd=self.module, check=True, capture_output=True, env={**_env(), "CGO_ENABLED": "0"})
        return out


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, go_binary: str, docker_client: Any) -> Iterator[Rig]:
    module = tmp_path_factory.mktemp("supervised")
    (module / "cmd" / "app").mkdir(parents=True)
    shutil.copyfile(APP, module / "cmd" / "app" / "main.go")
    (module / "go.mod").write_text("module example.com/supervised\n\ngo 1.22\n")
    repo = f"kodev.test/sup-{uuid.uuid4().hex[:10]}"
    (module / "kodev.toml").write_text(f'repo = "{repo}"\n')
    built = run_kodev(["build", "./cmd/app"], module)
    assert built.returncode == 0, built.stderr
    supervisor = build_supervisor(find_go(None, {}))
    yield Rig(docker_client, f"{repo}/app:latest", supervisor, module, go_binary)
    docker_client.images.remove(f"{repo}/app:latest", force=True)


@contextlib.contextmanager
def supervised(rig: Rig, tmp_path: Path, args: list[str], capabilities: Sequence[str] = SwapKit.CAPABILITIES,
               supervisor_flags: Sequence[str] = ()) -> Iterator[tuple[Any, Path, int]]:
    """A container on the app's image, the supervisor its entrypoint from a read-only mount, as kodev makes
    it (`SwapKit.entrypoint` and its capabilities, stdin open for the control channel): (container, the
    mounted directory, port). `args` follow the app's -addr."""
    directory = tmp_path / "kodev"
    directory.mkdir()
    shutil.copyfile(rig.supervisor, directory / SUPERVISOR)
    (directory / SUPERVISOR).chmod(0o555)
    port = free_port()
    kit = SwapKit(supervisor=rig.supervisor, mode="mount", root=tmp_path)
    entrypoint = kit.entrypoint("app")
    entrypoint[1:1] = supervisor_flags
    container = rig.client.containers.create(
        rig.image, ["-addr", f"127.0.0.1:{port}", *args], network_mode="host", cap_add=list(capabilities) or None,
        entrypoint=entrypoint, stdin_open=True, detach=False,
        volumes={str(directory): {"bind": "/kodev", "mode": "ro"}}, labels={"dev.kodev.test": "supervisor"})
    container.start()
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", "version=dev", timeout=30)
        yield container, directory, port
    finally:
        container.remove(force=True)


@pytest.fixture
def mounted(rig: Rig, tmp_path: Path) -> Iterator[tuple[Any, Path, int]]:
    with supervised(rig, tmp_path, ["-term-code", "7"]) as made:
        yield made


def _exit_code(container: Any) -> int:
    return int(container.wait(timeout=30)["StatusCode"])


def _place(directory: Path, binary: Path) -> None:
    partial = directory / ".app.partial"
    shutil.copyfile(binary, partial)
    partial.chmod(0o555)
    partial.replace(directory / "app")


def _pid(page: str) -> str:
    return page.split("pid=")[1].split()[0]


def test_a_new_binary_through_the_mount_is_served_by_the_same_container(rig: Rig, mounted: tuple[Any, Path, int]
                                                                       ) -> None:
    """Asked through the control channel (what kodev does), then by the restart signal (still honoured)."""
    container, directory, port = mounted
    before = fetch(f"http://127.0.0.1:{port}/") or ""
    channel = ControlChannel(rig.client, container.id)
    try:
        _place(directory, rig.binary("v2"))
        channel.restart()
        after = wait_for_page(f"http://127.0.0.1:{port}/", "version=v2", timeout=30)
        assert _pid(after) != _pid(before), "the app was not restarted"
        _place(directory, rig.binary("v3"))
        container.kill(RESTART_SIGNAL)
        wait_for_page(f"http://127.0.0.1:{port}/", "version=v3", timeout=30)
    finally:
        channel.close()
    container.reload()
    assert container.status == "running"
    top = container.top(ps_args="-o pid,comm")["Processes"]  # host pids
    pid1 = str(container.attrs["State"]["Pid"])  # the host pid of the container's PID 1
    assert [row[1] for row in top if row[0].strip() == pid1] == [SUPERVISOR], (pid1, top)


def test_a_binary_sent_down_the_control_channel_is_served_by_the_container(rig: Rig, tmp_path: Path) -> None:
    """The copy path: no shared files. The supervisor goes in with put_archive (owned by the container's
    user, 65532 here), the binaries through the container's stdin; the supervisor writes them itself."""
    port = free_port()
    kit = SwapKit(supervisor=rig.supervisor, mode="copy", root=tmp_path)
    container = rig.client.containers.create(
        rig.image, ["-addr", f"127.0.0.1:{port}"], network_mode="host", labels={"dev.kodev.test": "supervisor"},
        entrypoint=kit.entrypoint("app"), stdin_open=True, detach=False)
    channel = None
    try:
        put_copy_dir(rig.client, container.id, {SUPERVISOR: rig.supervisor})
        channel = ControlChannel(rig.client, container.id)
        container.start()
        first = wait_for_page(f"http://127.0.0.1:{port}/", "version=dev", timeout=30)
        for version in ("v4", "v5"):
            binary = rig.binary(version)
            channel.send_binary(binary)
            wait_for_page(f"http://127.0.0.1:{port}/", f"version={version}", timeout=30)
        channel.close()  # kodev gone: the channel closes, the app keeps serving
        channel = None
        assert "version=v5" in (fetch(f"http://127.0.0.1:{port}/") or "")
        container.reload()
        assert container.status == "running"
        assert _pid(first) != _pid(fetch(f"http://127.0.0.1:{port}/") or "pid=?")
        stream, stat = container.get_archive(f"{COPY_DIR}/app")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            placed = archive.getmember("app")
        assert (placed.size, placed.uid) == (binary.stat().st_size, 65532), stat  # written by the supervisor
    finally:
        if channel is not None:
            channel.close()
        container.remove(force=True)


def test_a_garbled_request_closes_the_channel_and_the_app_keeps_running(rig: Rig, mounted: tuple[Any, Path, int]
                                                                        ) -> None:
    container, _directory, port = mounted
    before = fetch(f"http://127.0.0.1:{port}/") or ""
    channel = ControlChannel(rig.client, container.id)
    try:
        channel._socket.sendall(b"binary many\n")
        wait_until(lambda: b"bad request" in container.logs(), 20, lambda: container.logs().decode())
        channel.restart()  # no longer read
    finally:
        channel.close()
    after = fetch(f"http://127.0.0.1:{port}/") or ""
    assert "version=dev" in after and _pid(after) == _pid(before)


def test_sigterm_is_forwarded_and_the_graceful_exit_code_passes_through(mounted: tuple[Any, Path, int]) -> None:
    container, _directory, _port = mounted
    container.stop(timeout=20)  # SIGTERM; the app shuts down gracefully and exits 7
    assert _exit_code(container) == 7
    assert b"graceful shutdown" in container.logs()


def test_sigquit_reaches_the_go_app_which_dumps_its_goroutines(mounted: tuple[Any, Path, int]) -> None:
    container, _directory, _port = mounted
    container.kill("SIGQUIT")
    assert _exit_code(container) == 2  # Go's exit code after a SIGQUIT dump
    logs = container.logs().decode()
    assert "goroutine " in logs and "SIGQUIT" in logs, logs[-2000:]


def test_the_app_exit_code_is_the_container_exit_code(mounted: tuple[Any, Path, int]) -> None:
    container, _directory, port = mounted
    fetch(f"http://127.0.0.1:{port}/exit?code=3")
    assert _exit_code(container) == 3


def test_orphans_are_reaped(mounted: tuple[Any, Path, int]) -> None:
    container, _directory, port = mounted
    assert "spawned" in (fetch(f"http://127.0.0.1:{port}/spawn") or "")
    wait_until(lambda: b"re-parented to 1" in container.logs(), 20, lambda: container.logs().decode())

    def no_zombies() -> bool:
        listed = fetch(f"http://127.0.0.1:{port}/zombies")  # None: no answer; "": no process in state Z
        return listed is not None and listed.strip() == ""

    wait_until(no_zombies, 20, lambda: f"zombies left: {fetch(f'http://127.0.0.1:{port}/zombies')!r}")


def test_a_binary_that_crashes_on_start_ends_the_container_with_its_code(rig: Rig, mounted: tuple[Any, Path, int]
                                                                        ) -> None:
    container, directory, _port = mounted
    _place(directory, rig.binary("bad", crash="5"))
    channel = ControlChannel(rig.client, container.id)
    channel.restart()
    assert _exit_code(container) == 5
    channel.close()
    assert b"crashing on start with 5" in container.logs()


@pytest.mark.parametrize(("user", "owner"), [
    ("", (65532, 65532)), ("0", (0, 0)), ("root", (0, 0)), ("65532", (65532, 65532)), ("nonroot", (65532, 65532)),
    ("nonroot:nobody", (65532, 65534)),
    ("1234", (1234, 0)), ("1234:55", (1234, 55)), ("ghost", None), ("nonroot:ghosts", None)])
def test_the_container_user_is_resolved_in_the_containers_own_files(rig: Rig, user: str,
                                                                    owner: tuple[int, int] | None) -> None:
    """Copy mode makes its directory owned by this user. kodev's base runs as 65532 (nonroot) when none is
    given, and has nobody (65534) too."""
    container = rig.client.containers.create(rig.image, user=user, labels={"dev.kodev.test": "supervisor"})
    try:
        if owner is None:
            with pytest.raises(ContainerError, match="ghost"):
                container_user(rig.client, container.id)
        else:
            assert container_user(rig.client, container.id) == ContainerUser(*owner)
    finally:
        container.remove(force=True)


# The app's listening socket outlives its restarts (supervisor/held.go). The app waits 300 ms before it
# listens, so that a client connecting every 2 ms would meet a closed port many times if it were not held.
SLOW_START = ["-start-delay", "300ms"]


def _restart_into(rig: Rig, directory: Path, container: Any, binary: Path) -> None:
    _place(directory, binary)
    channel = ControlChannel(rig.client, container.id)
    try:
        channel.restart()
    finally:
        channel.close()


def test_a_client_connecting_while_the_app_restarts_is_never_refused(rig: Rig, tmp_path: Path) -> None:
    with supervised(rig, tmp_path, SLOW_START) as (container, directory, port), Refusals(port) as client:
        wait_until(lambda: client.answered("version=dev"), 20)
        _restart_into(rig, directory, container, rig.binary("held"))
        wait_until(lambda: client.answered("version=held"), 30, lambda: container.logs().decode())
        logs = container.logs().decode()
    assert client.refused == 0, (client.refused, logs)
    assert "not held" not in logs
    versions = [answer.split("version=")[1].split()[0] for answer in client.answers if "version=" in answer]
    assert versions[0] == "dev" and versions[-1] == "held", versions


def test_without_the_capability_the_app_still_restarts_and_the_supervisor_says_why(rig: Rig, tmp_path: Path
                                                                                   ) -> None:
    """Docker's default seccomp profile refuses pidfd_getfd without CAP_SYS_PTRACE: the ports are not held,
    which the same client then meets (and which shows the test above could fail)."""
    with supervised(rig, tmp_path, SLOW_START, capabilities=()) as (container, directory, port), \
            Refusals(port) as client:
        wait_until(lambda: client.answered("version=dev"), 20)
        _restart_into(rig, directory, container, rig.binary("unheld"))
        wait_until(lambda: client.answered("version=unheld"), 30, lambda: container.logs().decode())
        logs = container.logs().decode()
    assert client.refused > 0
    assert "the app's ports are not held across restarts (pidfd_getfd: operation not permitted)" in logs


def test_a_port_the_new_app_does_not_listen_on_again_is_let_go(rig: Rig, tmp_path: Path) -> None:
    """Held for -hold after the new app started, then closed: a client is refused there, not kept waiting."""
    moved = free_port()
    with supervised(rig, tmp_path, [], supervisor_flags=["-hold", "1s"]) as (container, directory, port):
        _restart_into(rig, directory, container, rig.binary("moved", listen=f"127.0.0.1:{moved}"))
        wait_for_page(f"http://127.0.0.1:{moved}/", "version=moved", timeout=30)

        def refused() -> bool:
            with contextlib.suppress(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 0.2):
                return False
            return True

        wait_until(refused, 20, f"127.0.0.1:{port} still held after the app moved to {moved}")
