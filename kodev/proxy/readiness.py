"""When the new process serves: the dev proxy's two probes, over plain asyncio streams.

`Sentinel`: opened on `hold`, while the old process still runs. It sends one complete request
(`OPTIONS *`, which Go's server answers itself, without the app's handlers), waits for the answer (the old
process took it), and is then left idle: an idle keep-alive connection is what a graceful shutdown (Go's
`Server.Shutdown`) closes at once, where a connection that never sent a request would count as busy and
hold the old process up to its kill. The old process is gone when the sentinel reads end-of-file. Behind a
published Docker port, docker-proxy accepts and then closes as the app goes: the same end-of-file.

`serves`: the new process answers HTTP — any status line will do — or, with a `ready` path, that path
answers 2xx. A bare TCP accept is not enough: docker-proxy accepts while nothing listens behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

_PROBE_SECONDS = 1.0  # one probe's connect and answer


def _options(host: str, port: int, close: bool) -> bytes:
    return (f"OPTIONS * HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kodev-dev-proxy\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode()


class Sentinel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Sentinel | None:
        """A sentinel on what serves at host:port now; None when nothing does."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _PROBE_SECONDS)
        except (OSError, asyncio.TimeoutError):
            return None
        writer.write(_options(host, port, close=False))
        # Only an answer says the old process took the connection: one still in the listening socket's queue
        # when it goes is accepted by the new process (the supervisor keeps the socket across restarts),
        # which keeps it open, and `gone` would wait out the whole hold.
        try:
            answered = (await asyncio.wait_for(reader.readline(), _PROBE_SECONDS)).startswith(b"HTTP/")
        except (OSError, asyncio.TimeoutError):
            answered = False
        if not answered:
            writer.close()
            return None
        return cls(reader, writer)

    async def gone(self, deadline: float) -> None:
        """Until the process it reached has closed it (or `deadline`, monotonic)."""
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            while await asyncio.wait_for(self._reader.read(4096), max(0.0, deadline - time.monotonic())):
                pass  # the answer to OPTIONS, then nothing until the end

    def close(self) -> None:
        self._writer.close()


async def serves(host: str, port: int, ready: str | None, session: aiohttp.ClientSession) -> bool:
    """Whether the process at host:port answers HTTP now (with `ready`: that path with a 2xx)."""
    try:
        if ready is not None:
            async with session.get(f"http://{host}:{port}{ready}", allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=_PROBE_SECONDS * 2)) as answer:
                return 200 <= answer.status < 300
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _PROBE_SECONDS)
        try:
            writer.write(_options(host, port, close=True))
            line = await asyncio.wait_for(reader.readline(), _PROBE_SECONDS)
            return line.startswith(b"HTTP/")
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, aiohttp.ClientError):
        return False
