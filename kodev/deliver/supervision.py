"""What swapping needs once per session: kodev's supervisor compiled for the target, and whether the daemon
sees this machine's files (then binaries go through a bind mount, else they are copied into containers)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kodev import cache
from kodev.gotool import GoTool
from kodev.ownership import Owner
from kodev.supervisor_build import SUPERVISOR as SUPERVISOR
from kodev.supervisor_build import build_supervisor as build_supervisor

log = logging.getLogger(__name__)

RESTART_SIGNAL = "SIGRTMIN+3"  # restarts the app too (`docker kill --signal`); kodev uses the control channel
MOUNT_POINT = "/kodev"  # mount mode: the supervisor and the swapped binary, a read-only bind mount
COPY_DIR = "/ko-app/.kodev"  # copy mode: made at create time, owned by the container's user


@dataclass(frozen=True)
class SwapKit:
    """What every swapping service shares: the supervisor binary, and how binaries reach containers."""

    supervisor: Path
    mode: str  # 'mount' or 'copy'
    root: Path  # mount mode: per-container directories live here (the user's alone: 0700)
    grace_seconds: float = 2.0
    # The supervisor keeps the app's listening sockets open across restarts (supervisor/held.go) by taking a
    # copy with pidfd_getfd, which Docker's default seccomp profile allows only with CAP_SYS_PTRACE. For an
    # app that is not root the capability is only in the bounding set: it gains no privilege from it.
    CAPABILITIES: ClassVar[tuple[str, ...]] = ("SYS_PTRACE",)

    @property
    def directory(self) -> str:
        """Where the supervisor and the swapped binary are, inside the container."""
        return MOUNT_POINT if self.mode == "mount" else COPY_DIR

    def entrypoint(self, app: str, delve: Sequence[str] = ()) -> list[str]:
        """The supervisor's command line; `delve`: its -dlv flags (kodev debug)."""
        return [f"{self.directory}/{SUPERVISOR}", "-bin", f"{self.directory}/{app}", "-stdin",
                "-grace", f"{self.grace_seconds}s", *delve, "--", f"/ko-app/{app}"]


class ControlChannel:
    """The container's stdin, attached by kodev: the supervisor reads requests from it (supervisor.go).

    A write reaches the supervisor in well under a millisecond (a `docker kill` takes ~6 ms), and carries
    the binary itself in copy mode (a `put_archive` costs ~30 ms before the first byte). The container is
    created with StdinOnce: when kodev goes, its stdin closes and the supervisor stops listening."""

    def __init__(self, client: Any, container_id: str) -> None:
        response = client.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
        self._response = response
        self._socket: Any = getattr(response, "_sock", response)  # the SDK wraps it in SocketIO
        if isinstance(self._socket, socket.socket):
            self._socket.settimeout(60)  # a stuck daemon fails the swap (then a recreate), not the loop

    def restart(self) -> None:
        self._socket.sendall(b"restart\n")

    def send_binary(self, binary: Path) -> None:
        with open(binary, "rb") as file:
            self._socket.sendall(f"binary {os.fstat(file.fileno()).st_size}\n".encode())
            if isinstance(self._socket, socket.socket):
                self._socket.sendfile(file)  # zero-copy on a local socket
            else:  # an SSH transport's stand-in
                while chunk := file.read(1 << 20):
                    self._socket.sendall(chunk)

    def close(self) -> None:
        for closing in (self._socket, self._response):
            with contextlib.suppress(OSError):
                closing.close()


def place_binary(binary: Path, directory: Path, app: str) -> None:
    """Mount mode: put `binary` at `directory/app`, whole (renamed into place: the supervisor never runs half
    a file). A hard link, no copy: each `go build` writes a new file, so the link never changes under an
    app; copied when the build directory is on another file system. Staged beside `directory`, in its
    parent (the user's alone, never mounted): a container that may write its directory (kodev debug) cannot
    plant a link there for kodev to write through."""
    partial = directory.parent / f".{directory.name}-{app}.partial"
    partial.unlink(missing_ok=True)
    try:
        os.link(binary, partial)
    except OSError:
        shutil.copyfile(binary, partial)
        partial.chmod(0o555)
    os.replace(partial, directory / app)


def remove_stale(root: Path) -> list[Path]:
    """Swap directories of a kodev that is gone (killed outright): named NAME-PID-NS, their PID dead."""
    removed = []
    for directory in root.iterdir() if root.is_dir() else ():
        if directory.name.startswith(".") or not directory.is_dir():
            continue  # a binary being staged by place_binary (a kodev at work), not a container's directory
        pid = directory.name.rsplit("-", 2)[-2] if directory.name.count("-") >= 2 else ""
        if not pid.isdigit() or int(pid) == os.getpid() or int(pid) > 2**22:  # Linux's pid_max at most
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
        except PermissionError:
            continue  # another user's kodev, alive
    return removed


PROBE_LABEL = "dev.kodev.probe"


def probe_labels(owner: Owner) -> dict[str, str]:
    """The probe container's labels: kodev's ownership ones too, so that a probe left by a killed kodev is
    reaped by the next one like any other container of it."""
    return {**owner.labels(), PROBE_LABEL: "true"}


class Supervision:
    """Prepares the `SwapKit` on first use (needs an image to probe the daemon with)."""

    def __init__(self, go: GoTool, client: Any, owner: Owner | None = None, force_copy: bool = False) -> None:
        """`force_copy` (KODEV_SWAP_COPY=1): copy binaries into containers even when a bind mount would do
        (tests, benchmark)."""
        self.go = go
        self.client = client
        self.owner = owner or Owner.current()  # the probe is labelled with it
        self.force_copy = force_copy
        self._kit: SwapKit | None = None

    def kit(self, image: str) -> SwapKit:
        if self._kit is None:
            supervisor = build_supervisor(self.go)
            root = cache.subdir("swap")
            remove_stale(root)
            mode = "copy" if self.force_copy or not self._sees_local_files(image, supervisor, root) else "mount"
            log.debug("swapping binaries by %s", mode)
            self._kit = SwapKit(supervisor=supervisor, mode=mode, root=root)
        return self._kit

    def _sees_local_files(self, image: str, supervisor: Path, root: Path) -> bool:
        """A probe container on `image` runs the supervisor from a bind-mounted directory and checks a token
        written here: true only if the daemon sees this machine's files (not guessed from DOCKER_HOST).

        Only the daemon's answer decides: it refused to start the probe (the entrypoint is missing on its
        side) or the probe found another token. A daemon that does not answer is no answer: that error goes
        up (the round reports it, the loop waits for the daemon) and the next container probes again."""
        import docker.errors

        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix="probe-", dir=root))
        token = secrets.token_hex(8)
        container = None
        try:
            probe.chmod(0o755)
            shutil.copyfile(supervisor, probe / SUPERVISOR)
            (probe / SUPERVISOR).chmod(0o555)
            (probe / "token").write_text(token)
            container = self.client.containers.create(
                image, entrypoint=[f"{MOUNT_POINT}/{SUPERVISOR}", "-probe", f"{MOUNT_POINT}/token", "-token", token],
                volumes={str(probe): {"bind": MOUNT_POINT, "mode": "ro"}}, network_mode="none",
                labels=probe_labels(self.owner))
            container.start()
            return int(container.wait(timeout=60).get("StatusCode", 1)) == 0
        except docker.errors.APIError as exc:  # the entrypoint is missing on the daemon's side: it cannot see our files
            log.debug("bind-mount probe refused, binaries are copied: %s", exc.explanation or exc)
            return False
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except Exception as exc:
                    log.debug("probe container removal: %s", exc)
            shutil.rmtree(probe, ignore_errors=True)
