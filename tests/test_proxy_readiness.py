"""The dev proxy's sentinel (kodev/proxy/readiness.py) on real sockets on 127.0.0.1: it counts as the old
process's only once that process answered on it. A connection still waiting in the listening socket's queue
when the old process goes is accepted by the next one (the supervisor keeps the socket across restarts):
waiting for it to close would hold every request for the whole hold timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from kodev.proxy.readiness import Sentinel


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def test_a_connection_nobody_accepts_is_no_sentinel() -> None:
    server = _listening()  # listens, never accepts: the kernel completes the connection all the same
    try:
        assert asyncio.run(Sentinel.open("127.0.0.1", server.getsockname()[1])) is None
    finally:
        server.close()


def test_a_sentinel_the_old_process_answered_ends_when_it_closes() -> None:
    server = _listening()
    closed = threading.Event()

    def old_process() -> None:
        connection, _ = server.accept()
        connection.recv(4096)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.2)  # serving on, then a graceful shutdown closes the idle connection
        closed.set()
        connection.close()

    threading.Thread(target=old_process, daemon=True).start()

    async def probe() -> bool:
        sentinel = await Sentinel.open("127.0.0.1", server.getsockname()[1])
        assert sentinel is not None
        await sentinel.gone(time.monotonic() + 30)
        sentinel.close()
        return closed.is_set()

    try:
        assert asyncio.run(probe()), "gone() returned when the old process closed the connection, not before"
    finally:
        server.close()
