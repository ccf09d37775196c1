"""The Docker daemon, reached as the docker CLI reaches it: connection, health, and the images it has.

Loading images into it is a destination of the publish stage (kodev/publish/daemon.py)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

from kodev.errors import DaemonError
from kodev.imageref import parse as parse_reference
from kodev.platform import Platform, from_daemon

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_LOAD_TIMEOUT = 600  # seconds the daemon may take to answer a load; large bases take a while


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
        make: Callable[..., Any]
        if host:
            endpoint = f"{host} (from DOCKER_HOST)"
            make = functools.partial(docker.from_env, timeout=_LOAD_TIMEOUT)
        else:
            name = _current_context_name()
            context = None if name == "default" else ContextAPI.get_context(name)
            if name != "default" and context is None:
                raise DaemonError(f"docker context {name!r} is selected but does not exist. Pick one with "
                                  "`docker context use NAME` or set DOCKER_HOST.")
            if context is not None:
                endpoint = f"{context.Host} (docker context {name!r})"
                make = functools.partial(docker.DockerClient, base_url=context.Host, tls=context.TLSConfig or False,
                                         timeout=_LOAD_TIMEOUT)
            else:
                endpoint = DEFAULT_SOCKET
                make = functools.partial(docker.DockerClient, base_url=DEFAULT_SOCKET, timeout=_LOAD_TIMEOUT)
        client = make()
        client.ping()
    except DaemonError:
        raise
    except Exception as exc:  # the SDK raises DockerException, requests' and socket errors alike
        where = locals().get("endpoint") or host or DEFAULT_SOCKET
        if where == DEFAULT_SOCKET:
            where += " (the default: DOCKER_HOST is not set and the docker context is 'default')"
        raise DaemonError(f"cannot reach the Docker daemon: {reason(exc)}. {_hint(str(where))}") from None
    # Further clients (Daemon.open_client) speak the version this one negotiated: no request to make one.
    return Daemon(client, endpoint, functools.partial(make, version=client.api.api_version))


def reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("No such file or directory", "Connection refused", "Permission denied"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class Daemon:
    """A connected daemon. The docker client is passed in, never global."""

    def __init__(self, client: Any, endpoint: str, make_client: Callable[..., Any] | None = None) -> None:
        self.client = client
        self.endpoint = endpoint
        self._make_client = make_client
        self._platform: Platform | None = None
        self._facts: tuple[dict[str, Any], dict[str, Any]] | None = None

    def open_client(self) -> Any:
        """A client of its own, for a caller that holds connections for long (a log stream): the shared
        client's pool (10 connections) stays free for the loop's short requests. The caller closes it."""
        return self._make_client() if self._make_client is not None else self.client

    @property
    def api(self) -> Any:
        return self.client.api

    def reachable(self) -> bool:
        """Whether the daemon answers a ping right now."""
        try:
            return bool(self.api.ping())
        except Exception:
            return False

    def facts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The daemon's `version` and `info` documents, asked once per connection: `info` costs the daemon
        a walk over its images and containers, and what kodev reads from them (platform, store, ID) stays."""
        if self._facts is None:
            self._facts = (dict(self.api.version()), dict(self.api.info()))
        return self._facts

    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = from_daemon(*self.facts())
        return self._platform

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


def _split_tag(ref: str) -> tuple[str, str]:
    """(repository, tag) as the daemon's pull takes them: a digest reference keeps its digest as the tag."""
    parts = parse_reference(ref)
    if parts.digest:
        return parts.name, parts.digest
    return parts.repository, parts.tag or "latest"
