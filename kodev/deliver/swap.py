"""Delivery by swapping the binary into the running container: kodev's supervisor restarts the app in place.

Every container of a swapping service runs kodev's supervisor as PID 1 (kodev/supervisor/supervisor.go,
compiled once per Go version and platform), which runs the image's entrypoint. When only the binary
changed (same base, kodata, config), the new binary is put in front of the app and the supervisor is told
to restart it (a real-time signal the app never sees): no container start, no image load on the way to
serving. How the binary gets there (`SwapKit.mode`):

- 'mount': a kodev-owned host directory, bind-mounted read-only at /kodev; the binary lands in it by
  write + rename (never half-written). Used when the daemon sees this machine's files (a probe checks).
- 'copy': `put_archive` into the container, in one of two slots named by a marker written after the binary.

Anything else (kodata, base, a vanished container) recreates, under the supervisor again. A swap that fails
falls back to a recreate, once, saying why.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import time
from pathlib import Path

from kodev.containers import Containers, Replacement
from kodev.deliver import Delivered, Pending, Release
from kodev.deliver.recreate import Recreate, _Recreating
from kodev.deliver.supervision import COPY_DIR, MOUNT_POINT, RESTART_SIGNAL, Supervision, SwapKit
from kodev.publish import Published
from kodev.services import ContainerSpec

log = logging.getLogger(__name__)

class Swap(Recreate):
    """A service whose binary-only changes are swapped in place; everything else recreates (supervised)."""

    def __init__(self, spec: ContainerSpec, containers: Containers, supervision: Supervision, app: str) -> None:
        super().__init__(spec, containers)
        self.supervision = supervision
        self.kit: SwapKit | None = None  # known once the first container is made (the probe needs an image)
        self.app = app
        self.directory: Path | None = None  # mount mode: this container's host directory
        self.copies = 0  # copy mode: which slot comes next

    def begin(self, release: Release) -> Pending:
        note = ""
        if release.binary is not None and self.container_id is not None and not self.down:
            started = time.monotonic()
            try:
                self._swap(self.container_id, release.binary)
            except Exception as exc:  # the daemon refused the copy, the container went away...
                log.debug("swap failed", exc_info=True)
                note = (f"swapping the binary into {self.spec.name} failed "
                        f"({getattr(exc, 'explanation', None) or exc}); recreated it instead")
            else:
                return _Swapped(Delivered(self.spec.service, "swapped", time.monotonic() - started))
        replacement = None
        if self.container_id is not None:
            replacement = Replacement(self.containers, self.container_id, self.spec)
            self.container_id = None
        return _Supervised(self, replacement, release.ref, note)

    # --- how a binary reaches the container ------------------------------------------------------

    def _swap(self, container_id: str, binary: Path) -> None:
        assert self.kit is not None
        if self.kit.mode == "mount":
            assert self.directory is not None
            partial = self.directory / f".{self.app}.partial"
            shutil.copyfile(binary, partial)
            partial.chmod(0o555)
            os.replace(partial, self.directory / self.app)  # atomic: the supervisor never sees half a file
        else:
            slot = "ab"[self.copies % 2]
            self.copies += 1
            name = f".kodev-{self.app}"
            size = binary.stat().st_size
            self.containers.client.api.put_archive(container_id, COPY_DIR, _tar([
                (f"{name}.{slot}", binary.read_bytes(), 0o555),
                (f"{name}.ready", f"{slot} {size}\n".encode(), 0o444),  # after the binary: names a whole slot
            ]))
        self.containers.client.api.kill(container_id, RESTART_SIGNAL)

    def create_supervised(self, ref: str) -> str:
        """Create (not start) this service's container, its entrypoint the supervisor."""
        self.kit = kit = self.supervision.kit(ref)
        mounts: dict[str, dict[str, str]] = {}
        if kit.mode == "mount":
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)  # the replaced container's
            self.directory = _fresh_directory(kit.root, self.spec.name)
            shutil.copyfile(kit.supervisor, self.directory / "supervisor")
            (self.directory / "supervisor").chmod(0o555)
            mounts[str(self.directory)] = {"bind": MOUNT_POINT, "mode": "ro"}
            slot = f"{MOUNT_POINT}/{self.app}"
        else:
            slot = f"{COPY_DIR}/.kodev-{self.app}"
        container_id = self.containers.create(self.spec, ref, entrypoint=kit.entrypoint(self.app, slot),
                                              extra_volumes=mounts)
        if kit.mode == "copy":
            self.containers.client.api.put_archive(container_id, COPY_DIR, _tar([
                (".kodev-supervisor", kit.supervisor.read_bytes(), 0o555)]))
        return container_id

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


class _Swapped:
    def __init__(self, delivered: Delivered) -> None:
        self.delivered = delivered

    def complete(self, published: Published | None) -> Delivered:
        return self.delivered

    def abort(self) -> None:
        pass  # the new binary serves already; the image follows on the next build


class _Supervised(_Recreating):
    """A recreate whose new container runs under the supervisor."""

    def __init__(self, delivery: Swap, replacement: Replacement | None, ref: str, note: str) -> None:
        super().__init__(delivery, replacement, ref)
        self.swap = delivery
        self.note = note

    def complete(self, published: Published | None) -> Delivered:
        started = time.monotonic()
        delivery = self.swap
        if self.replacement is not None:
            container_id = self.replacement.finish(self.ref, lambda: delivery.create_supervised(self.ref))
            how = "recreated"
        else:
            delivery.containers.claim_name(delivery.spec)
            container_id = delivery.create_supervised(self.ref)
            delivery.containers.start(container_id, delivery.spec)
            how = "started"
        delivery.container_id, delivery.down = container_id, False
        return Delivered(delivery.spec.service, how, time.monotonic() - started, container_id, self.note)


def _fresh_directory(root: Path, name: str) -> Path:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)  # no other local user may put a binary where a container execs it
    directory = root / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir(mode=0o755)
    return directory


def _tar(files: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
