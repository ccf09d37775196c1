"""FAKE faults in front of the real registry, for the two failures docker-registry cannot be made to show
on demand: an upload cut off midway, and a registry that refuses OCI manifests. `FaultyRelay` forwards
every connection to the real registry byte for byte, except that it cuts the first `cut_uploads` blob
uploads after part of their body, and, with `refuse_manifests`, answers every manifest PUT itself with
distribution's 400 MANIFEST_INVALID error. One request per connection (it asks the client to close), so
that each request's head can be read."""

from __future__ import annotations

import json
import socket
import threading

from tests.integration.process import free_port


class FaultyRelay:
    def __init__(self, upstream_port: int, cut_uploads: int = 0, refuse_manifests: bool = False) -> None:
        self.upstream_port, self.port = upstream_port, free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.cut_left, self.refuse_manifests = cut_uploads, refuse_manifests
        self.cut = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode()
            method, path = request_line.split(" ")[:2]
            if self.refuse_manifests and method == "PUT" and "/manifests/" in path:
                body = json.dumps({"errors": [{"code": "MANIFEST_INVALID", "message": "manifest invalid",
                                               "detail": "unsupported media type"}]}).encode()
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
                               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                return
            cutting = False
            if method == "PUT" and "/blobs/uploads/" in path:
                with self._lock:
                    if self.cut_left > 0:
                        self.cut_left, self.cut, cutting = self.cut_left - 1, self.cut + 1, True
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
                if cutting:  # part of the body, then the connection dies, as a network cut midway does
                    client.recv(4096)
                    client.shutdown(socket.SHUT_RDWR)
                    return
                threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
                _pump(upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
