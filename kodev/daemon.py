"""Stage 'load': the Docker daemon, reached as the docker CLI reaches it, and image loads into it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kodev.errors import DaemonError
from kodev.image.archive import docker_save_stream, oci_archive_stream
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.platform import Platform, from_daemon

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_LOAD_TIMEOUT = 600  # seconds the daemon may take to answer a load; large bases take a while


@dataclass(frozen=True)
class LoadResult:
    image_id: str
    bytes_sent: int
    seconds: float
    slim: bool = False  # only the layers the daemon lacked were sent
    replaced: str | None = None  # the image the tag pointed at before, if it was another


def _hint(endpoint: str) -> str:
    from kodev.endpoints import unreachable_hint

    return unreachable_hint(endpoint)


def _current_context_name() -> str:
    from docker.context.config import get_current_context_name

    return os.environ.get("DOCKER_CONTEXT") or str(get_current_context_name())


def connect() -> Daemon:
    """DOCKER_HOST, else the current docker context (DOCKER_CONTEXT or the CLI's config), else the socket."""
    import docker
    from docker.context import ContextAPI

    host = os.environ.get("DOCKER_HOST")
    try:
        if host:
            endpoint = f"{host} (from DOCKER_HOST)"
            client = docker.from_env(timeout=_LOAD_TIMEOUT)
        else:
            name = _current_context_name()
            context = None if name == "default" else ContextAPI.get_context(name)
            if name != "default" and context is None:
                raise DaemonError(f"docker context {name!r} is selected but does not exist. Pick one with "
                                  "`docker context use NAME` or set DOCKER_HOST.")
            if context is not None:
                endpoint = f"{context.Host} (docker context {name!r})"
                client = docker.DockerClient(base_url=context.Host, tls=context.TLSConfig or False,
                                             timeout=_LOAD_TIMEOUT)
            else:
                endpoint = DEFAULT_SOCKET
                client = docker.DockerClient(base_url=DEFAULT_SOCKET, timeout=_LOAD_TIMEOUT)
        client.ping()
    except DaemonError:
        raise
    except Exception as exc:  # the SDK raises DockerException, requests' and socket errors alike
        where = locals().get("endpoint") or host or DEFAULT_SOCKET
        if where == DEFAULT_SOCKET:
            where += " (the default: DOCKER_HOST is not set and the docker context is 'default')"
        raise DaemonError(f"cannot reach the Docker daemon: {_reason(exc)}. {_hint(str(where))}") from None
    return Daemon(client, endpoint)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("No such file or directory", "Connection refused", "Permission denied"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class Daemon:
    """A connected daemon. The docker client is passed in, never global."""

    def __init__(self, client: Any, endpoint: str) -> None:
        self.client = client
        self.endpoint = endpoint
        self._platform: Platform | None = None
        self._slim: bool | None = None
        self._store: str | None = None
        self._known: list[list[str]] = []  # layer lists of images loaded by this process

    @property
    def api(self) -> Any:
        return self.client.api

    def reachable(self) -> bool:
        """Whether the daemon answers a ping right now."""
        try:
            return bool(self.api.ping())
        except Exception:
            return False

    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = from_daemon(self.api.version(), self.api.info())
        return self._platform

    def load(self, image: Image, tags: list[str], hints: Sequence[str] = ()) -> LoadResult:
        """Load `image`, sending only the layer files the daemon lacks; verify; fall back to everything.

        `hints` name images in the daemon likely to share a bottom run of layers (the base); the image
        currently under `tags[0]` is always asked. On any error with a slim archive kodev sends the full
        one and remembers, for this daemon, to send full archives from then on.
        """
        started = time.monotonic()
        current = self.inspect(tags[0])
        layer_lists = [self._layers(current)] if current else []
        layer_lists += [self._layers(found) for found in map(self.inspect, hints) if found]
        omit = self._present(image, layer_lists) if self._slim_allowed() else frozenset()
        sent = 0
        image_id = ""
        if omit:
            try:
                image_id, sent = self._send(image, tags, omit)
            except DaemonError as exc:
                self._refuse_slim(str(exc))
        slim = bool(image_id)
        if not image_id:
            image_id, full = self._send(image, tags, frozenset())
            sent += full
        replaced = str(current["Id"]) if current and current["Id"] != image_id else None
        return LoadResult(image_id, sent, time.monotonic() - started, slim=slim, replaced=replaced)

    @staticmethod
    def _layers(inspected: dict[str, Any]) -> list[str]:
        return list((inspected.get("RootFS") or {}).get("Layers") or [])

    def forget(self, image_id: str) -> bool:
        """Remove an image kodev made that a newer build replaced, unless a container or another tag uses it.

        Only images with kodev's command label are touched, and never forcibly: the daemon refuses while
        anything still uses the image, and that refusal is the answer.
        """
        import docker.errors

        found = self.inspect(image_id)
        if found is None or COMMAND_LABEL not in ((found.get("Config") or {}).get("Labels") or {}):
            return False
        try:
            self.api.remove_image(image_id, noprune=False)
        except docker.errors.APIError:
            return False
        return True

    def _send(self, image: Image, tags: list[str], omit: frozenset[str]) -> tuple[str, int]:
        import docker.errors

        if self.store() == "containerd":
            sent = _Counter(oci_archive_stream(image, tags, omit))
        else:
            sent = _Counter(docker_save_stream([(image, tags)], omit))
        try:
            for message in self.api.load_image(sent):
                detail = message.get("errorDetail") or ({"message": message["error"]} if "error" in message
                                                        else None)
                if detail:
                    raise DaemonError(f"the Docker daemon at {self.endpoint} refused the image for {tags[0]}: "
                                      f"{detail.get('message', detail)}")
            inspected = self.api.inspect_image(tags[0])
        except docker.errors.APIError as exc:
            raise DaemonError(f"loading {tags[0]} into the Docker daemon at {self.endpoint} failed: "
                              f"{exc.explanation or exc}") from None
        except (ConnectionError, OSError) as exc:
            raise DaemonError(f"lost the Docker daemon while loading {tags[0]}: {_reason(exc)}. "
                              + _hint(self.endpoint)) from None
        layers = (inspected.get("RootFS") or {}).get("Layers") or []
        if layers != image.diff_ids:
            raise DaemonError(f"the Docker daemon at {self.endpoint} loaded {tags[0]} with layers {layers}, "
                              f"not the {len(image.diff_ids)} layers kodev sent; the load did not take.")
        self._known.append(list(layers))
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
            self._store = self._detect_store()
        return self._store

    def _detect_store(self) -> str:
        info = self.api.info()
        components = " ".join(c.get("Name", "") for c in (self.api.version().get("Components") or []))
        if "Podman" in components:
            return "podman"
        status = dict((pair[0], pair[1]) for pair in info.get("DriverStatus") or [] if len(pair) == 2)
        if "containerd" in status.get("driver-type", "") or str(info.get("Driver", "")).startswith("overlayfs"):
            return "containerd"
        return "classic"

    def _fallback_file(self) -> Path:
        from kodev import cache

        daemon_id = str(self.api.info().get("ID", ""))
        key = hashlib.sha256(f"{self.endpoint}\0{daemon_id}".encode()).hexdigest()[:16]
        return cache.subdir("daemons") / f"{key}.full-archives"

    def _slim_allowed(self) -> bool:
        if self._slim is None:
            # The classic store skips layer files it has, the containerd store blobs it has a snapshot
            # for; Podman rejects partial archives, so it always gets the full one.
            self._slim = self.store() != "podman" and not self._fallback_file().exists()
        return self._slim

    def _refuse_slim(self, reason: str) -> None:
        self._slim = False
        with contextlib.suppress(OSError):
            self._fallback_file().write_text(reason + "\n")

    # --- images already in the daemon (bases) ----------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any] | None:
        """The daemon's inspect document of `ref`, or None when it has no such image."""
        import docker.errors

        try:
            return dict(self.api.inspect_image(ref))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return None
            raise DaemonError(f"the Docker daemon at {self.endpoint} cannot inspect {ref}: "
                              f"{exc.explanation or exc}") from None

    def pull(self, ref: str, platform: Platform, progress: Callable[[str], None], present: bool = False) -> None:
        """Pull `ref` for `platform` through the daemon (its credentials, its mirrors), reporting progress."""
        import docker.errors

        repository, tag = _split_tag(ref)
        try:
            for message in self.api.pull(repository, tag=tag, stream=True, decode=True, platform=str(platform)):
                if "error" in message:
                    raise DaemonError(str(message.get("error")))
                status = message.get("status")
                if status and ("Downloaded" in status or "Pulling from" in status or "Digest" in status):
                    progress(f"{status} {message.get('id', '')}".strip())
        except (docker.errors.APIError, DaemonError) as exc:
            reason = exc.explanation if isinstance(exc, docker.errors.APIError) else str(exc)
            situation = ("is in the Docker daemon, but pulling it again (--pull, or for another platform) failed"
                         if present else "is not in the Docker daemon and pulling it failed")
            raise DaemonError(f"base image {ref!r} {situation}: {reason}. Check the name and tag, your network, "
                              "and `docker login` for private registries.") from None

    def export(self, image_id: str) -> Iterator[bytes]:
        """`docker save` of one image, as a stream of chunks."""
        chunks: Iterator[bytes] = self.api.get_image(image_id, chunk_size=1 << 20)
        return chunks


class _Counter:
    """Passes chunks through to the HTTP request body, counting the bytes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.count += len(chunk)
            yield chunk


def _split_tag(ref: str) -> tuple[str, str | None]:
    """("repo", "tag") of a reference; a digest reference keeps its digest as the tag part."""
    if "@" in ref:
        repository, digest = ref.split("@", 1)
        return repository, digest
    name, _, tag = ref.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return ref, "latest"
