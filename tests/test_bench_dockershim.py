"""bench/dockershim.py, the relay that puts Skaffold's containers on the host network: its rewrite of a
container's config, the requests it forwards, and a round trip through a fake daemon socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.dockershim import DockerShim, parse_head, render_head, to_host_network

# --- the Docker shim's rewrite ----------------------------------------------------------------------------

def test_a_container_on_skaffold_s_network_goes_on_the_host_network() -> None:
    config: dict[str, Any] = {
        "Image": "kodev.bench/abc/s1-skaffold:latest", "Cmd": None,
        "HostConfig": {"NetworkMode": "skaffold-network-1f2e", "PortBindings": {"8080/tcp": []}},
        "NetworkingConfig": {"EndpointsConfig": {"skaffold-network-1f2e": {}}}}
    assert to_host_network(config, "skaffold-network-", ["-addr", "127.0.0.1:4000"])
    assert config["HostConfig"] == {"NetworkMode": "host"}
    assert config["NetworkingConfig"] == {"EndpointsConfig": {}}
    assert config["Cmd"] == ["-addr", "127.0.0.1:4000"]
    other = {"HostConfig": {"NetworkMode": "bridge"}}
    assert not to_host_network(other, "skaffold-network-", None)
    assert other == {"HostConfig": {"NetworkMode": "bridge"}}


def test_requests_are_forwarded_with_connection_close() -> None:
    request = parse_head(b"POST /v1.47/containers/create?name=s1 HTTP/1.1\r\nHost: api.moby.localhost\r\n"
                         b"Content-Length: 2\r\nConnection: keep-alive")
    assert (request.path, request.query("name")) == ("/containers/create", "s1")
    head = render_head(request, body_length=40)
    assert head.endswith(b"Content-Length: 40\r\nConnection: close\r\n\r\n")
    assert b"keep-alive" not in head
    upgraded = parse_head(b"POST /v1.47/containers/x/attach HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp")
    assert b"Connection: Upgrade" in render_head(upgraded) and b"close" not in render_head(upgraded)


def test_the_shim_answers_network_creation_and_rewrites_containers(tmp_path: Path) -> None:
    import socket
    import threading

    from bench.dockershim import DockerShim

    seen: list[bytes] = []
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.bind(str(tmp_path / "daemon.sock"))
    upstream.listen(4)

    def daemon() -> None:  # one request: record it whole, answer, close (as for Connection: close)
        connection, _ = upstream.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(parse_head(head).header("Content-Length") or 0)
            while len(body) < length:
                body += connection.recv(65536)
            seen.append(head + b"\r\n\r\n" + body)
            connection.sendall(b'HTTP/1.1 201 Created\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"Id":"c1"}')

    thread = threading.Thread(target=daemon, daemon=True)
    thread.start()

    def ask(shim: DockerShim, request: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(shim.path))
            client.sendall(request)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            return answer

    def post(path: str, body: dict[str, object]) -> bytes:
        data = json.dumps(body).encode()
        return (f"POST /v1.47{path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode() + data

    shim = DockerShim(tmp_path / "shim.sock", "skaffold-network-", ["-addr", "127.0.0.1:4000"],
                      upstream=str(tmp_path / "daemon.sock"))
    try:
        answer = ask(shim, post("/networks/create", {"Name": "skaffold-network-42", "Labels": {}}))
        assert answer.startswith(b"HTTP/1.1 201 Created") and b'"Warning": ""' in answer
        assert shim.networks == {"skaffold-network-42"} and not seen  # never reached the daemon
        answer = ask(shim, post("/containers/create?name=kb-1-s", {
            "Image": "kb-1-s:latest", "HostConfig": {"NetworkMode": "skaffold-network-42"}}))
        assert answer.endswith(b'{"Id":"c1"}')
        thread.join(timeout=5)
        head, _, body = seen[0].partition(b"\r\n\r\n")
        assert json.loads(body) == {"Image": "kb-1-s:latest", "HostConfig": {"NetworkMode": "host"},
                                    "Cmd": ["-addr", "127.0.0.1:4000"]}
        assert f"Content-Length: {len(body)}".encode() in head and b"Connection: close" in head
        assert shim.containers == ["kb-1-s"]
        delete = ask(shim, b"DELETE /v1.47/networks/skaffold-network-42 HTTP/1.1\r\nHost: docker\r\n\r\n")
        assert delete.startswith(b"HTTP/1.1 204")
    finally:
        shim.close()
        upstream.close()
