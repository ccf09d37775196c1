"""Publish into the Docker daemon: send only the layers it lacks, verify the load, fall back to everything.

With Docker's classic store a `docker save` archive may leave out the files of bottom layers the daemon
already holds (it skips a layer whose chain ID exists); the containerd image store accepts an OCI-layout
archive without the blobs it has. Podman rejects partial archives and always gets the full one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kodev.daemon import Daemon, reason
from kodev.errors import DaemonError
from kodev.image.archive import docker_save_stream, oci_archive_stream
from kodev.image.assemble import Image
from kodev.publish import Published

log = logging.getLogger(__name__)


class DaemonPublisher:
    """Loads images into one daemon. Remembers, per daemon, when slim archives must not be sent."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._slim: bool | None = None
        self._store: str | None = None
        self._known: list[list[str]] = []  # layer lists of images loaded by this process

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        """Load `image` as `ref`; the image under `ref` now, and `hints`, say which layers the daemon has."""
        started = time.monotonic()
        current = self.daemon.inspect(ref)
        layer_lists = [_layers(current)] if current else []
        layer_lists += [_layers(found) for found in map(self.daemon.inspect, hints) if found]
        omit = self._present(image, layer_lists) if self._slim_allowed() else frozenset()
        sent = 0
        image_id = ""
        if omit:
            try:
                image_id, sent = self._send(image, ref, omit)
            except DaemonError as exc:
                log.debug("slim load refused, sending full archives from now on: %s", exc)
                self._refuse_slim(str(exc))
        slim = bool(image_id)
        if not image_id:
            image_id, full = self._send(image, ref, frozenset())
            sent += full
        replaced = str(current["Id"]) if current and current["Id"] != image_id else None
        return Published(ref, image_id, sent, time.monotonic() - started, slim=slim, replaced=replaced)

    def close(self) -> None:
        pass

    def _send(self, image: Image, ref: str, omit: frozenset[str]) -> tuple[str, int]:
        import docker.errors

        endpoint = self.daemon.endpoint
        if self.store() == "containerd":
            sent = _Counter(oci_archive_stream(image, [ref], omit))
        else:
            sent = _Counter(docker_save_stream([(image, [ref])], omit))
        try:
            for message in self.daemon.api.load_image(sent):
                detail = message.get("errorDetail") or ({"message": message["error"]} if "error" in message
                                                        else None)
                if detail:
                    raise DaemonError(f"the Docker daemon at {endpoint} refused the image for {ref}: "
                                      f"{detail.get('message', detail)}")
            inspected = self.daemon.api.inspect_image(ref)
        except docker.errors.APIError as exc:
            raise DaemonError(f"loading {ref} into the Docker daemon at {endpoint} failed: "
                              f"{exc.explanation or exc}") from None
        except (ConnectionError, OSError) as exc:
            raise DaemonError(f"lost the Docker daemon at {endpoint} while loading {ref}: {reason(exc)}. "
                              "Check that it is running; kodev sends the image again on the next build.") from None
        layers = _layers(inspected)
        if layers != image.diff_ids:
            raise DaemonError(f"the Docker daemon at {endpoint} loaded {ref} with layers {layers}, "
                              f"not the {len(image.diff_ids)} layers kodev sent; the load did not take.")
        self._known.append(layers)
        return str(inspected["Id"]), sent.count

    def _present(self, image: Image, layer_lists: Sequence[Sequence[str]]) -> frozenset[str]:
        """Diff IDs of the longest bottom run of `image`'s layers the daemon is known to hold."""
        wanted = image.diff_ids
        best = 0
        for layers in [*self._known, *layer_lists]:
            shared = 0
            while shared < min(len(layers), len(wanted)) and layers[shared] == wanted[shared]:
                shared += 1
            best = max(best, shared)
        return frozenset(wanted[:best]) - frozenset(wanted[best:])

    def store(self) -> str:
        """'classic' (graph drivers), 'containerd' (the containerd image store) or 'podman'."""
        if self._store is None:
            self._store = detect_store(self.daemon.api.version(), self.daemon.api.info())
        return self._store

    def _fallback_file(self) -> Path:
        from kodev import cache

        daemon_id = str(self.daemon.api.info().get("ID", ""))
        key = hashlib.sha256(f"{self.daemon.endpoint}\0{daemon_id}".encode()).hexdigest()[:16]
        return cache.subdir("daemons") / f"{key}.full-archives"

    def _slim_allowed(self) -> bool:
        if self._slim is None:
            self._slim = self.store() != "podman" and not self._fallback_file().exists()
        return self._slim

    def _refuse_slim(self, why: str) -> None:
        self._slim = False
        with contextlib.suppress(OSError):
            self._fallback_file().write_text(why + "\n")


def detect_store(version: dict[str, Any], info: dict[str, Any]) -> str:
    """Which image store a daemon uses, from its version and info documents."""
    components = " ".join(c.get("Name", "") for c in (version.get("Components") or []))
    if "Podman" in components:
        return "podman"
    status = dict((pair[0], pair[1]) for pair in info.get("DriverStatus") or [] if len(pair) == 2)
    if "containerd" in status.get("driver-type", "") or str(info.get("Driver", "")).startswith("overlayfs"):
        return "containerd"
    return "classic"


def _layers(inspected: dict[str, Any]) -> list[str]:
    return list((inspected.get("RootFS") or {}).get("Layers") or [])


class _Counter:
    """Passes chunks through to the HTTP request body, counting the bytes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.count += len(chunk)
            yield chunk
