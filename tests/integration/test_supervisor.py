"""kodev's supervisor as PID 1 of a real container: signals forwarded, exit codes passed through, orphans
reaped, the app restarted on a new binary (bind mount and copy) — against the real daemon and real Go.

The app (supervisor_app/main.go) answers its version and pid, exits on request, spawns an orphan, lists
zombies, and shuts down gracefully on SIGTERM with a chosen exit code. It runs in an image kodev builds.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kodev.deliver.supervision import RESTART_SIGNAL, build_supervisor
from kodev.deliver.swap import _tar
from kodev.gotool import find_go
from tests.integration.conftest import run_kodev
from tests.integration.process import fetch, free_port, wait_for_page, wait_until

APP = Path(__file__).resolve().parent / "supervisor_app" / "main.go"


@dataclass(frozen=True)
class Rig:
    client: Any
    image: str
    supervisor: Path
    module: Path
    go: str

    def binary(self, version: str, crash: str = "") -> Path:
        out = self.module / f"app-{version}{'-crash' if crash else ''}"
        flags = f"-X main.version={version}" + (f" -X main.crash={crash}" if crash else "")
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


@pytest.fixture
def mounted(rig: Rig, tmp_path: Path) -> Iterator[tuple[Any, Path, int]]:
    """A container on the app's image, the supervisor its entrypoint from a read-only mount: (container,
    the mounted directory, port)."""
    directory = tmp_path / "kodev"
    directory.mkdir()
    shutil.copyfile(rig.supervisor, directory / "supervisor")
    (directory / "supervisor").chmod(0o555)
    port = free_port()
    container = rig.client.containers.create(
        rig.image, ["-addr", f"127.0.0.1:{port}", "-term-code", "7"], network_mode="host",
        entrypoint=["/kodev/supervisor", "-bin", "/kodev/app", "-grace", "2s", "--", "/ko-app/app"],
        volumes={str(directory): {"bind": "/kodev", "mode": "ro"}}, labels={"dev.kodev.test": "supervisor"})
    container.start()
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", "version=dev", timeout=30)
        yield container, directory, port
    finally:
        container.remove(force=True)


def _exit_code(container: Any) -> int:
    return int(container.wait(timeout=30)["StatusCode"])


def _place(directory: Path, binary: Path) -> None:
    partial = directory / ".app.partial"
    shutil.copyfile(binary, partial)
    partial.chmod(0o555)
    partial.replace(directory / "app")


def test_a_new_binary_through_the_mount_is_served_by_the_same_container(rig: Rig, mounted: tuple[Any, Path, int]
                                                                       ) -> None:
    container, directory, port = mounted
    before = fetch(f"http://127.0.0.1:{port}/") or ""
    _place(directory, rig.binary("v2"))
    container.kill(RESTART_SIGNAL)
    after = wait_for_page(f"http://127.0.0.1:{port}/", "version=v2", timeout=30)
    assert after.split("pid=")[1] != before.split("pid=")[1], "the app was not restarted"
    container.reload()
    assert container.status == "running"
    top = container.top(ps_args="-o pid,comm")["Processes"]  # host pids
    pid1 = str(container.attrs["State"]["Pid"])  # the host pid of the container's PID 1
    assert [row[1] for row in top if row[0].strip() == pid1] == ["supervisor"], (pid1, top)


def test_a_binary_copied_into_the_container_is_served_by_it(rig: Rig) -> None:
    """The copy path: no shared files; the supervisor and the binaries go in with put_archive."""
    port = free_port()
    container = rig.client.containers.create(
        rig.image, ["-addr", f"127.0.0.1:{port}"], network_mode="host", labels={"dev.kodev.test": "supervisor"},
        entrypoint=["/ko-app/.kodev-supervisor", "-bin", "/ko-app/.kodev-app", "-grace", "2s", "--", "/ko-app/app"])
    try:
        rig.client.api.put_archive(container.id, "/ko-app", _tar([
            (".kodev-supervisor", rig.supervisor.read_bytes(), 0o555)]))
        container.start()
        wait_for_page(f"http://127.0.0.1:{port}/", "version=dev", timeout=30)
        for slot, version in (("a", "v3"), ("b", "v4")):
            binary = rig.binary(version)
            rig.client.api.put_archive(container.id, "/ko-app", _tar([
                (f".kodev-app.{slot}", binary.read_bytes(), 0o555),
                (".kodev-app.ready", f"{slot} {binary.stat().st_size}\n".encode(), 0o444)]))
            container.kill(RESTART_SIGNAL)
            wait_for_page(f"http://127.0.0.1:{port}/", f"version={version}", timeout=30)
        container.reload()
        assert container.status == "running"
    finally:
        container.remove(force=True)


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
    container.kill(RESTART_SIGNAL)
    assert _exit_code(container) == 5
    assert b"crashing on start with 5" in container.logs()
