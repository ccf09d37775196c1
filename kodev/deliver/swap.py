"""Delivery by swapping the binary into the running container: kodev's supervisor restarts the app in place.

Every container of a swapping service runs kodev's supervisor as PID 1 (kodev/supervisor/supervisor.go,
compiled once per Go version and platform), which runs the image's entrypoint, with the container's stdin
as kodev's control channel. When only the binary and/or kodata files changed (same base and config, no
kodata file removed), they are put in front of the app and the supervisor restarts the app (apps often read
their kodata once, at start): no container start, no image load on the way to serving. New kodata files are
extracted over /var/run/ko by the daemon (`put_archive`, ~30 ms: the container's user may not write there).
How the binary gets there (`SwapKit.mode`):

- 'mount': a kodev-owned host directory, bind-mounted read-only at /kodev; the binary lands in it by
  write + rename (never half-written), then a `restart` request. Used when the daemon sees this machine's
  files (a probe checks).
- 'copy': the binary itself goes down the control channel; the supervisor writes it beside the app and
  renames it into place (in /ko-app/.kodev, made at create time and owned by the container's user).

Anything else (a removed kodata file, the base, the config, a vanished container) recreates, under the
supervisor again. A swap that fails
falls back to a recreate, once, saying why.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from kodev.containers import ContainerRuntime
from kodev.deliver import Delivered, Delivery, Done, Pending, Release
from kodev.deliver.container_user import ContainerUser, container_user
from kodev.deliver.recreate import RecreateDelivery, _Recreating
from kodev.deliver.supervision import (
    COPY_DIR,
    MOUNT_POINT,
    SUPERVISOR,
    ControlChannel,
    Supervision,
    SwapKit,
    place_binary,
)
from kodev.services import ContainerSpec

log = logging.getLogger(__name__)
MISSED_SLACK = 0.05  # seconds

class SwapDelivery(RecreateDelivery):
    """A service whose binary-only changes are swapped in place; everything else recreates (supervised)."""

    writable_mount = False  # mount mode: whether the container may write its directory (Delve's needs it)

    def __init__(self, spec: ContainerSpec, containers: ContainerRuntime, supervision: Supervision, app: str
                 ) -> None:
        super().__init__(spec, containers)
        self.supervision = supervision
        self.kit: SwapKit | None = None  # known once the first container is made (the probe needs an image)
        self.app = app
        self.directory: Path | None = None  # mount mode: this container's host directory
        self.channel: ControlChannel | None = None  # the current container's stdin
        self.swapped_at = 0.0  # when the last binary was swapped in (epoch seconds: compared with the daemon's)

    def take_over(self, previous: Delivery) -> bool:
        if not super().take_over(previous):
            return False
        if isinstance(previous, SwapDelivery):  # under the supervisor: swapped into, or (stale) replaced
            self.kit, self.channel, self.directory = previous.hand_over_supervision()
        return True

    def hand_over_supervision(self) -> tuple[SwapKit | None, ControlChannel | None, Path | None]:
        held = self.kit, self.channel, self.directory
        self.channel = self.directory = None
        return held

    def begin(self, release: Release) -> Pending:
        note = ""
        if release.in_place and self.container_id is not None and not self.down and not self.stale:
            started = time.monotonic()
            try:
                self._swap(release)
            except Exception as exc:  # the daemon refused the copy, the container went away...
                log.debug("swap failed", exc_info=True)
                note = (f"swapping the {_what(release)} into {self.spec.name} failed "
                        f"({getattr(exc, 'explanation', None) or exc}); recreated it instead")
            else:
                self.swapped_at = time.time()
                return Done(self.swapped(Delivered(self.spec.service, "swapped", time.monotonic() - started)))
        return _Recreating(self, self._replacement(), release.ref, note, create=lambda: self.create_supervised(
            release.ref))

    def runs(self, container_id: str | None) -> None:
        super().runs(container_id)
        self.swapped_at = 0.0  # a new container starts on the newest binary

    def missed(self, ended_at: float) -> bool:
        # The supervisor ends with its app: an app that exited on its own just before the restart request
        # came never gets the new binary. The container's end is stamped a moment after the app's, so
        # an end up to MISSED_SLACK after the swap still counts as before it.
        return self.swapped_at > 0 and ended_at < self.swapped_at + MISSED_SLACK

    def restored(self, container_id: str) -> None:
        """Started again after a failed load: its stdin is new, so the control channel is opened again (the
        old one reaches no one, and a swap through it would serve nothing new)."""
        super().restored(container_id)
        self._close_channel()
        try:
            self.channel = ControlChannel(self.supervision.client, container_id)
        except Exception as exc:  # gone again: the next change recreates it
            log.debug("cannot attach to %s again: %s", self.spec.name, exc)
            self.lost()

    def start(self, ref: str) -> str:
        self.containers.claim_name(self.spec)
        container_id = self.create_supervised(ref)
        self.containers.start(container_id, self.spec)
        return container_id

    # --- how a binary reaches the container ------------------------------------------------------

    def _swap(self, release: Release) -> None:
        """New kodata files first (extracted over /var/run/ko by the daemon: the container's user may not
        write there), then the binary; then the supervisor restarts the app, which reads both anew."""
        if self.kit is None or self.channel is None or self.container_id is None:
            raise OSError("no control channel to the container's supervisor")
        if release.kodata is not None:
            with open(release.kodata, "rb") as archive:
                self.supervision.client.api.put_archive(self.container_id, "/", archive)
        if release.binary is None:
            self.channel.restart()
        elif self.kit.mode == "mount":
            assert self.directory is not None
            place_binary(release.binary, self.directory, self.app)
            self.channel.restart()
        else:
            self.channel.send_binary(release.binary)

    def create_supervised(self, ref: str) -> str:
        """Create (not start) this service's container, its entrypoint the supervisor, its stdin attached."""
        self.kit = kit = self.supervision.kit(ref)
        mounts: dict[str, dict[str, str]] = {}
        tools = self.tools(kit)
        if kit.mode == "mount":
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)  # the replaced container's
            self.directory = _fresh_directory(kit.root, self.spec.name)
            for name, tool in tools.items():
                place_binary(tool, self.directory, name)
            if self.writable_mount:  # its parent (0700) still keeps other local users out
                self.directory.chmod(0o777)
            mounts[str(self.directory)] = {"bind": MOUNT_POINT, "mode": "rw" if self.writable_mount else "ro"}
        container_id = self.containers.create(self.spec, ref, entrypoint=self.entrypoint(kit),
                                              extra_volumes=mounts, control_channel=True,
                                              capabilities=self.capabilities(kit))
        client = self.supervision.client  # the control channel is a socket of the daemon's
        if kit.mode == "copy":
            put_copy_dir(client, container_id, tools)
        self._close_channel()
        self.channel = ControlChannel(client, container_id)
        return container_id

    def swapped(self, delivered: Delivered) -> Delivered:
        """A swap served: what to report of it."""
        return delivered

    def tools(self, kit: SwapKit) -> dict[str, Path]:
        """What goes into the container beside the app, by name: the supervisor."""
        return {SUPERVISOR: kit.supervisor}

    def entrypoint(self, kit: SwapKit) -> list[str]:
        return kit.entrypoint(self.app)

    def capabilities(self, kit: SwapKit) -> tuple[str, ...]:
        """What the container gets besides its defaults: what the supervisor needs to hold the app's ports."""
        return kit.CAPABILITIES

    def _close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def close(self) -> None:
        self._close_channel()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def _what(release: Release) -> str:
    return " and ".join(what for what, new in (("binary", release.binary), ("kodata", release.kodata)) if new)


def _fresh_directory(root: Path, name: str) -> Path:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)  # no other local user may put a binary where a container execs it
    directory = root / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir(mode=0o755)
    return directory


def _tar(files: list[tuple[str, bytes, int]], owner: ContainerUser | None = None) -> bytes:
    """An archive of `files` (name, content, mode), owned by `owner` (else root); a name ending in '/' is a
    directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data, mode in files:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.mtime = mode, 0
            if owner is not None:
                info.uid, info.gid = owner.uid, owner.gid
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def put_copy_dir(client: Any, container_id: str, tools: dict[str, Path]) -> None:
    """Copy mode: make COPY_DIR in a created container, with `tools` (the supervisor; Delve) in it, owned by
    the container's user (the supervisor runs as that user and writes the binaries it receives there)."""
    copy_dir = PurePosixPath(COPY_DIR)
    archive = _tar([(f"{copy_dir.name}/", b"", 0o755),
                    *((f"{copy_dir.name}/{name}", tool.read_bytes(), 0o555) for name, tool in tools.items())],
                   container_user(client, container_id))
    client.api.put_archive(container_id, str(copy_dir.parent), archive)
