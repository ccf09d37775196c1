"""WebSockets through the dev proxy: the upstream connection is made first (held and retried like any request),
then the browser's handshake is answered and frames are relayed both ways until either side closes. A
restart of the app closes the browser's socket too; the page reconnects, as it would to the app itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web


async def relay(request: web.Request, connecting: Awaitable[aiohttp.ClientWebSocketResponse[bool]],
                failed: Callable[[str], web.Response]) -> web.StreamResponse:
    try:
        upstream = await connecting
    except TimeoutError as exc:
        return failed(str(exc))
    except aiohttp.WSServerHandshakeError as exc:  # the app refused the upgrade: its status and headers
        return web.Response(status=exc.status, text=exc.message, headers=dict(exc.headers or {}))
    browser = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (), autoping=False,
                                    max_msg_size=0)
    try:
        await browser.prepare(request)
        await asyncio.gather(_pump(browser, upstream), _pump(upstream, browser))
    finally:
        await upstream.close()
        await browser.close()
    return browser


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool]) -> None:
    """Frames from `source` to `sink` as they come; a close on one side closes the other."""
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            elif message.type == aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
            else:
                break
    # The side that closed says why (1000 normal, 1001 going away, ...): the other side hears the same.
    await sink.close(code=source.close_code or aiohttp.WSCloseCode.GOING_AWAY)
