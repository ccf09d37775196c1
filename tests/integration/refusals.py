"""A client that connects to 127.0.0.1:PORT over and over while a test restarts what listens there, and
counts what it met: answers, refused connections, and other failures (a request the old app had accepted
when it was stopped is reset: that is not a refusal)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class Refusals:
    """`with Refusals(port) as client: …`: a connection every `every` seconds in a thread until the block ends."""

    def __init__(self, port: int, every: float = 0.002) -> None:
        self.port = port
        self.every = every
        self.answers: list[str] = []  # the bodies, in order
        self.refused = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"refusals-{port}", daemon=True)

    def __enter__(self) -> Refusals:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def answered(self, text: str) -> bool:
        return any(text in answer for answer in self.answers[-50:])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
                    connection.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    received = b""
                    while chunk := connection.recv(65536):
                        received += chunk
                self.answers.append(received.decode(errors="replace"))
            except ConnectionRefusedError:
                self.refused += 1
            except OSError as exc:
                self.failed.append(repr(exc))
            time.sleep(self.every)
