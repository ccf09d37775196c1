"""Stage 'load': the Docker daemon, reached as the docker CLI reaches it, and image loads into it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kodev.errors import DaemonError
from kodev.image.archive import docker_save_stream
from kodev.image.assemble import Image
from kodev.platform import Platform, from_daemon

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_LOAD_TIMEOUT = 600  # seconds the daemon may take to answer a load; large bases take a while


@dataclass(frozen=True)
class LoadResult:
    image_id: str
    bytes_sent: int
    seconds: float


def _hint(endpoint: str) -> str:
    return (f"Start Docker (e.g. `sudo systemctl start docker`, or `sudo dockerd &`), or point kodev at a "
            f"running daemon with DOCKER_HOST or `docker context use NAME`. Tried {endpoint}.")


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

    @property
    def api(self) -> Any:
        return self.client.api

    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = from_daemon(self.api.version(), self.api.info())
        return self._platform

    def load(self, image: Image, tags: list[str]) -> LoadResult:
        """Stream `image` as a docker-save archive, check the daemon has exactly its layers, tag it."""
        import docker.errors

        started = time.monotonic()
        sent = _Counter(docker_save_stream([(image, tags)]))
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
        return LoadResult(image_id=inspected["Id"], bytes_sent=sent.count,
                          seconds=time.monotonic() - started)


class _Counter:
    """Passes chunks through to the HTTP request body, counting the bytes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.count += len(chunk)
            yield chunk
