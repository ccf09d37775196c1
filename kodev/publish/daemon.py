"""Publish into the Docker daemon: send only the layers it lacks, verify the load, fall back to everything.

With Docker's classic store a `docker save` archive may leave out the files of bottom layers the daemon
already holds (it skips a layer whose chain ID exists); the containerd image store accepts an OCI-layout
archive without the blobs it has. Podman rejects partial archives and always gets the full one.

Only an answer turns slim loads off for a daemon (a marker in kodev's cache, for later sessions too): it
refused the slim archive (an error in the load stream, an API error, or other layers than sent) although it
holds every layer left out, and then took the full archive. A broken connection is no answer: it is raised
as DaemonConnectionError, so the watch loop sees the daemon is lost, and the next load is slim again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kodev.daemon import reason
from kodev.errors import DaemonConnectionError, DaemonError, ImageError
from kodev.image.archive import docker_save_stream, oci_archive_stream
from kodev.image.assemble import Image
from kodev.publish import ImageStore, Published

log = logging.getLogger(__name__)


class DaemonPublisher:
    """Loads images into one daemon. Remembers, per daemon, when slim archives must not be sent.

    `run_tag` (kodev watch: 'watch'): every image is also tagged REPOSITORY:run_tag, the reference its
    containers are created from, so that a `kodev build` meanwhile (which moves only `latest`) leaves them
    named in `docker ps`. `close` removes those tags again where they still point at what was loaded."""

    def __init__(self, daemon: ImageStore, run_tag: str | None = None) -> None:
        self.daemon = daemon
        self.run_tag = run_tag
        self._run_refs: dict[str, str] = {}  # run reference -> the image ID it was last given
        self._slim: bool | None = None
        self._store: str | None = None
        self._known: list[list[str]] = []  # layer lists of images loaded by this process

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        """Load `image` as `ref`; the image under `ref` now, and `hints`, say which layers the daemon has.

        A lost connection (the daemon stopped or restarted) raises DaemonConnectionError at once, slim or
        not, and teaches nothing about partial archives; a refused slim archive is followed by the full one.
        """
        started = time.monotonic()
        refs = [ref, *([run_ref(ref, self.run_tag)] if self.run_tag else [])]
        before = [found for found in map(self._inspect, refs) if found]  # what the tags name now
        vouchers = [found for found in (*before, *map(self._inspect, hints)) if found]
        try:
            slim_allowed = self._slim_allowed()  # asks the daemon which store it uses, once
        except (ConnectionError, OSError) as exc:
            raise self._lost(ref, exc) from None
        omit = self._present(image, [*self._known, *map(_layers, vouchers)]) if slim_allowed else frozenset()
        sent = 0
        image_id = ""
        refusal: str | None = None  # why the daemon refused a slim archive that left out only layers it holds
        if omit:
            try:
                image_id, sent = self._send(image, refs, omit)
            except DaemonConnectionError:
                raise  # not an answer: the loop learns the daemon is lost; slim loads stay on
            except DaemonError as exc:
                held = self._held_all(image, omit, vouchers)
                log.debug("slim load refused (%s), sending the full archive: %s",
                          "the daemon holds every layer left out" if held else "a layer left out is gone", exc)
                refusal = str(exc) if held else None
        slim = bool(image_id)
        if not image_id:
            image_id, full = self._send(image, refs, frozenset())
            sent += full
            if refusal is not None:  # it took the full archive, refused the partial one with its layers present
                self._refuse_slim(refusal)
        self._run_refs.update((r, image_id) for r in refs[1:])
        replaced = tuple(dict.fromkeys(str(found["Id"]) for found in before if found["Id"] != image_id))
        return Published(ref, image_id, sent, time.monotonic() - started, slim=slim, replaced=replaced)

    def _held_all(self, image: Image, omit: frozenset[str], vouchers: Sequence[dict[str, Any]]) -> bool:
        """After a refused slim load: whether images in the daemon, asked again by ID, still hold every layer
        left out. If not, a layer kodev remembered (from this process's loads, or an image removed since by
        `docker rmi` or a prune) was gone, the refusal says nothing about partial archives, and the memory
        of this process's loads is dropped."""
        still = [found for found in (self._inspect(str(v["Id"])) for v in vouchers) if found]
        if omit <= self._present(image, [_layers(found) for found in still]):
            return True
        self._known.clear()
        return False

    def close(self) -> None:
        """Remove the run tags this publisher made (its containers are gone by now); the images keep `latest`."""
        for tagged, image_id in self._run_refs.items():
            try:
                found = self.daemon.inspect(tagged)
                if found is not None and found["Id"] == image_id:
                    self.daemon.api.remove_image(tagged)  # untags; deletes only an image nothing else names
            except Exception as exc:  # in use, or the daemon is gone: a later watch moves the tag anyway
                log.debug("kept the tag %s: %s", tagged, exc)
        self._run_refs.clear()

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            return self.daemon.inspect(ref)
        except (ConnectionError, OSError) as exc:  # requests' errors are OSErrors
            raise self._lost(ref, exc) from None

    def _lost(self, ref: str, exc: BaseException) -> DaemonConnectionError:
        return DaemonConnectionError(f"lost the Docker daemon at {self.daemon.endpoint} while loading {ref}: "
                                     f"{reason(exc)}. Check that it is running; kodev sends the image again on "
                                     "the next build.")

    def _send(self, image: Image, refs: list[str], omit: frozenset[str]) -> tuple[str, int]:
        import docker.errors

        endpoint = self.daemon.endpoint
        ref = refs[0]
        if self.store() == "containerd":
            sent = _Counter(oci_archive_stream(image, refs, omit))
        else:
            sent = _Counter(docker_save_stream([(image, refs)], omit))
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
            raise self._lost(ref, exc) from None
        layers = _layers(inspected)
        if layers != image.diff_ids:
            raise DaemonError(f"the Docker daemon at {endpoint} loaded {ref} with layers {layers}, "
                              f"not the {len(image.diff_ids)} layers kodev sent; the load did not take.")
        self._known.append(layers)
        return str(inspected["Id"]), sent.count

    @staticmethod
    def _present(image: Image, layer_lists: Sequence[Sequence[str]]) -> frozenset[str]:
        """Diff IDs of the longest bottom run of `image`'s layers that one of `layer_lists` holds."""
        wanted = image.diff_ids
        best = 0
        for layers in layer_lists:
            shared = 0
            while shared < min(len(layers), len(wanted)) and layers[shared] == wanted[shared]:
                shared += 1
            best = max(best, shared)
        return frozenset(wanted[:best]) - frozenset(wanted[best:])

    def store(self) -> str:
        """'classic' (graph drivers), 'containerd' (the containerd image store) or 'podman'."""
        if self._store is None:
            self._store = detect_store(*self.daemon.facts())
        return self._store

    def fallback_file(self) -> Path:
        """The marker that turns slim loads off for this daemon, in this and later sessions."""
        from kodev import cache

        daemon_id = str(self.daemon.facts()[1].get("ID", ""))
        key = hashlib.sha256(f"{self.daemon.endpoint}\0{daemon_id}".encode()).hexdigest()[:16]
        return cache.subdir("daemons") / f"{key}.full-archives"

    def _slim_allowed(self) -> bool:
        if self._slim is None:
            self._slim = self.store() != "podman" and not self.fallback_file().exists()
        return self._slim

    def _refuse_slim(self, why: str) -> None:
        self._slim = False
        with contextlib.suppress(OSError):
            self.fallback_file().write_text(why + "\n")


def run_ref(ref: str, run_tag: str) -> str:
    """The reference the containers of `ref`'s image run from: the same repository, tagged `run_tag`."""
    from kodev.imageref import parse

    return f"{parse(ref).repository}:{run_tag}"


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
    """Passes chunks through to the HTTP request body, counting the bytes.

    A layer file that cannot be read is an ImageError, not an OSError: the HTTP client would wrap an
    OSError from the body into a connection error, and kodev would say it lost the daemon."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.chunks:
                self.count += len(chunk)
                yield chunk
        except OSError as exc:
            raise ImageError(f"cannot read the image's layers to send them to the Docker daemon: {exc}. The "
                             "layer cache (KODEV_CACHE_DIR, else ~/.cache/kodev) may have been cleaned "
                             "meanwhile: build again.") from None
