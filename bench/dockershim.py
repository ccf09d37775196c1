"""A pass-through Docker API socket that puts Skaffold's containers on the host network.

Skaffold's docker deployer always runs an image on a bridge network of its own (`skaffold-network-<run
id>`, a random id, created through the API) and offers no way to pass the container arguments. Here every
container must use the host network and the server must be told its port, as kodev and the ko loop tell it
(`-addr 127.0.0.1:PORT`). So Skaffold talks to this socket instead of the daemon's: its network is never
created (a 201 answered here), a container created on it is created with `NetworkMode: host` and the
server's arguments, and everything else — image loads, logs, inspects — passes through byte for byte.

Each request is forwarded with `Connection: close`, so every request is seen here (a kept-alive connection
would carry later requests past the parser); upgraded connections (attach) are spliced as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.measure import BenchError

HEAD_LIMIT = 1 << 20
_VERSIONED = re.compile(r"^/v\d+(?:\.\d+)*(/.*)$")


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    path: str  # without the API version prefix and the query
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def query(self, name: str) -> str | None:
        values = parse_qs(urlsplit(self.target).query).get(name)
        return values[0] if values else None


def parse_head(head: bytes) -> Request:
    """A request's line and headers (the bytes before the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = tuple((key.strip(), value.strip()) for key, _, value in
                    (line.partition(":") for line in lines[1:] if line))
    path = urlsplit(target).path
    versioned = _VERSIONED.match(path)
    return Request(method, target, versioned.group(1) if versioned else path, headers)


def render_head(request: Request, body_length: int | None = None) -> bytes:
    """The request's head to forward: `Connection: close` unless upgraded, a new Content-Length if given."""
    upgraded = "upgrade" in (request.header("Connection") or "").lower()
    lines = [f"{request.method} {request.target} HTTP/1.1"]
    for key, value in request.headers:
        if key.lower() == "connection" and not upgraded:
            continue
        if key.lower() == "content-length" and body_length is not None:
            value = str(body_length)
        lines.append(f"{key}: {value}")
    if not upgraded:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def to_host_network(config: dict[str, Any], network_prefix: str, cmd: Sequence[str] | None) -> bool:
    """Rewrite a /containers/create body in place when it names one of the tool's networks; whether it did."""
    host = config.get("HostConfig") or {}
    mode = str(host.get("NetworkMode") or "")
    if not mode.startswith(network_prefix):
        return False
    host["NetworkMode"] = "host"
    host.pop("PortBindings", None)  # the host network publishes nothing: the app binds the host's port itself
    config["HostConfig"] = host
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    endpoints.pop(mode, None)
    if cmd is not None:
        config["Cmd"] = list(cmd)
    return True


def _response(status: str, body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n" \
           "Connection: close\r\n\r\n"
    return head.encode() + body


def upstream_socket() -> str:
    """The daemon's unix socket path, from DOCKER_HOST (the only kind of daemon this shim relays to)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise BenchError(f"the Docker shim relays to a unix socket; DOCKER_HOST is {host!r}")
    return host.removeprefix("unix://")


class DockerShim:
    """Listen on `path`; relay to `upstream`. `containers` lists the names of the containers created."""

    def __init__(self, path: Path, network_prefix: str, cmd: Sequence[str] | None = None,
                 upstream: str | None = None) -> None:
        self.path = path
        self.network_prefix = network_prefix
        self.cmd = tuple(cmd) if cmd is not None else None
        self.upstream = upstream or upstream_socket()
        self.containers: list[str] = []
        self.networks: set[str] = set()
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="docker-shim", daemon=True)
        self._thread.start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk or len(data) > HEAD_LIMIT:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            request = parse_head(head)
            body_length = None
            if request.method == "POST" and request.path in ("/networks/create", "/containers/create"):
                length = int(request.header("Content-Length") or 0)
                while len(rest) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    rest += chunk
                answer, rest = self._intercept(request, rest)
                if answer is not None:
                    client.sendall(answer)
                    return
                body_length = len(rest)
            elif request.method == "DELETE" and request.path.removeprefix("/networks/") in self.networks:
                client.sendall(_response("204 No Content"))
                return
            self._relay(client, render_head(request, body_length) + rest)

    def _intercept(self, request: Request, body: bytes) -> tuple[bytes | None, bytes]:
        """(an answer to send instead of forwarding, or None; the body to forward)."""
        parsed = json.loads(body or b"{}")
        if request.path == "/networks/create":
            name = str(parsed.get("Name", ""))
            if name.startswith(self.network_prefix):
                with self._lock:
                    self.networks.add(name)
                return _response("201 Created", json.dumps({"Id": uuid.uuid4().hex, "Warning": ""}).encode()), b""
            return None, body
        if to_host_network(parsed, self.network_prefix, self.cmd):
            with self._lock:
                self.containers.append(request.query("name") or "")
            return None, json.dumps(parsed).encode()
        return None, body

    def _relay(self, client: socket.socket, first: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            try:
                upstream.connect(self.upstream)
                upstream.sendall(first)
            except OSError:
                return
            forward = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
            forward.start()
            _pump(upstream, client)
            forward.join(timeout=1)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                break
            target.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def docker_shim(directory: Path, network_prefix: str, cmd: Sequence[str] | None = None) -> Iterator[DockerShim]:
    shim = DockerShim(directory / "docker-shim.sock", network_prefix, cmd)
    try:
        yield shim
    finally:
        shim.close()
