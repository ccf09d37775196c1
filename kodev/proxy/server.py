"""One service's dev proxy (aiohttp): requests held across rebuilds, pages reloaded when the new code serves.

Every method here runs on the proxies' event loop (kodev/proxy/runner.py owns it and its thread). A request
is read whole (a dev proxy sees small bodies), so that it can be sent again: while the service is held
(a rebuild is delivering) it waits; a connection the old process refused or dropped before answering is
retried, for up to `hold_seconds`, then answered with the proxy's own 503 page. Responses pass through as
they come (streamed, flushed chunk by chunk: SSE too), byte for byte, except HTML, which gets the
live-reload script. `Upgrade: websocket` is relayed frame by frame.

A reload is sent only when the new process serves (kodev/proxy/readiness.py): the sentinel opened on
`hold` must see the old process go, then the new one must answer HTTP (or the `ready` path a 2xx). A
release that never comes (a delivery that failed midway) is ended by a watchdog after `hold_seconds`.

Retries: a request the upstream refused is sent again until the hold timeout; one it dropped after it was
sent (the app may have acted on it) only when a rebuild explains the drop (the service was held while it
was out), at most twice — else the proxy answers 502 at once (a handler that panics is not asked 1,500
times).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from kodev.proxy import page
from kodev.proxy.readiness import Sentinel, serves

log = logging.getLogger(__name__)
_T = TypeVar("_T")
# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, never forwarded.
_HOP = frozenset(h.lower() for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
                                     "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"))
_RETRY_SECONDS = 0.02  # between two tries of a refused upstream
_DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionResetError)
_DROPS_RETRIED = 2


class Dropped(Exception):
    """The upstream dropped a request it had been sent, and no rebuild explains it."""


@dataclass(frozen=True)
class ProxySettings:
    """Where one service's proxy listens, where its app listens, and how long a request may be held."""

    service: str
    listen: tuple[str, int]
    upstream: tuple[str, int]
    ready: str | None = None  # a path that answers 2xx once the app is ready (None: the port accepting)
    hold_seconds: float = 30.0


@dataclass(frozen=True)
class Held:
    """What one release held: how many requests waited, and the longest wait (seconds)."""

    count: int
    longest: float


class ServiceProxy:
    def __init__(self, settings: ProxySettings, reloaded: Callable[[str, Held], None]) -> None:
        self.settings = settings
        self._reloaded = reloaded  # told (on the loop) when the new code serves and tabs were told to reload
        self._serving = asyncio.Event()
        self._serving.set()
        self._epoch = 0  # which hold a release belongs to
        self._sentinel: Sentinel | None = None
        self._generation = int(time.time() * 1000)  # a reconnecting tab older than this reloads
        self._error: str | None = None  # the compile error tabs show, until a build succeeds
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._held: list[float] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def upstream_url(self) -> str:
        host, port = self.settings.upstream
        return f"http://{host}:{port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession(
            auto_decompress=False, connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), cookie_jar=aiohttp.DummyCookieJar())
        # On stop, open streams (SSE, WebSockets) are cut after a second, not waited for.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        host, port = self.settings.listen
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()

    async def stop(self) -> None:
        for queue in list(self._streams):
            queue.put_nowait(b"")  # ends each event stream
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self._close_sentinel()

    # --- what the watch loop says (through the runner) ---------------------------------------------------

    async def hold(self) -> None:
        """A rebuild is reaching the service: new requests wait from now on."""
        self._epoch += 1
        self._serving.clear()
        self._close_sentinel()
        host, port = self.settings.upstream
        self._sentinel = await Sentinel.open(host, port)  # None: nothing serves yet, nothing old to wait for
        asyncio.get_running_loop().call_later(self.settings.hold_seconds + 1, self._unstick, self._epoch)

    def _unstick(self, epoch: int) -> None:
        if epoch == self._epoch and not self._serving.is_set():
            log.debug("%s: no release came for the last hold; requests go again", self.settings.service)
            self._serving.set()

    async def release(self) -> None:
        """The rebuild was delivered: once the new process serves, held requests go and tabs reload."""
        assert self._session is not None
        epoch, deadline = self._epoch, time.monotonic() + self.settings.hold_seconds
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            await sentinel.gone(deadline)
            sentinel.close()
        host, port = self.settings.upstream
        while time.monotonic() < deadline and not await serves(host, port, self.settings.ready, self._session):
            await asyncio.sleep(_RETRY_SECONDS)
        if epoch != self._epoch:
            return  # held again meanwhile: that release says when
        self._serving.set()
        self._generation = max(self._generation + 1, int(time.time() * 1000))
        self._broadcast(page.sse("reload", {"generation": self._generation}))
        held, self._held = self._held, []
        self._reloaded(self.settings.service, Held(len(held), max(held, default=0.0)))

    async def build_failed(self, output: str) -> None:
        self._error = output
        self._broadcast(page.sse("error", {"output": output}))

    async def build_ok(self) -> None:
        if self._error is not None:
            self._error = None
            self._broadcast(page.sse("ok", {}))

    def _close_sentinel(self) -> None:
        if self._sentinel is not None:
            self._sentinel.close()
            self._sentinel = None

    # --- requests ------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == page.EVENTS_PATH:
            return await self._events(request)
        if request.path in (page.WORKER_PATH, page.CLIENT_PATH):
            return web.Response(text=page.WORKER_JS if request.path == page.WORKER_PATH else page.CLIENT_JS,
                                content_type="application/javascript", headers={"Cache-Control": "no-store"})
        if request.headers.get("Upgrade", "").lower() == "websocket":
            from kodev.proxy.websocket import relay

            return await relay(request, self._upstream(lambda: self._ws_connect(request)), self._failed)
        body = await request.read()
        try:
            answer = await self._upstream(lambda: self._send(request, body))
        except TimeoutError as exc:
            return self._failed(str(exc))
        except Dropped as exc:
            return self._failed(str(exc), 502, "Bad Gateway")
        async with answer:
            return await self._respond(request, answer)

    async def _upstream(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """`attempt`, once the service is not held; again while the upstream refuses it, until the hold
        timeout (then TimeoutError); again when it dropped it during a rebuild, twice at most (else Dropped)."""
        started = time.monotonic()
        deadline = started + self.settings.hold_seconds
        waited, drops = False, 0
        while True:
            if not self._serving.is_set():
                waited = True
                try:
                    await asyncio.wait_for(self._serving.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise TimeoutError(self._timeout_detail()) from None
            epoch = self._epoch
            try:
                result = await attempt()
            except aiohttp.ClientConnectorError as exc:  # refused: never reached the app
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{self._timeout_detail()} ({exc})") from None
                waited = True
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            except _DROPPED as exc:
                rebuilt = epoch != self._epoch or not self._serving.is_set()
                if not rebuilt or drops >= _DROPS_RETRIED or time.monotonic() >= deadline:
                    raise Dropped(f"{self.settings.service} at {self.upstream_url} closed the connection "
                                  f"without answering ({exc or type(exc).__name__}); its output says why.") from None
                drops, waited = drops + 1, True
                continue
            if waited:
                self._held.append(time.monotonic() - started)
            return result

    def _timeout_detail(self) -> str:
        return (f"{self.settings.service} did not serve at {self.upstream_url} within "
                f"{self.settings.hold_seconds:g}s. kodev's output says why (a failed build keeps the last "
                "good one running; a crash shows its last lines).")

    def _failed(self, detail: str, status: int = 503, title: str = "Service Unavailable") -> web.Response:
        return web.Response(status=status, body=page.error_page(status, title, detail, self._generation),
                            content_type="text/html", headers={"Cache-Control": "no-store", "Retry-After": "1"})

    async def _send(self, request: web.Request, body: bytes) -> aiohttp.ClientResponse:
        assert self._session is not None
        return await self._session.request(
            request.method, self.upstream_url + request.path_qs, headers=_forwarded(request.headers),
            data=body if body else None, allow_redirects=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"))

    async def _ws_connect(self, request: web.Request) -> aiohttp.ClientWebSocketResponse[bool]:
        assert self._session is not None
        headers = CIMultiDict((k, v) for k, v in _forwarded(request.headers).items()
                              if not k.lower().startswith("sec-websocket-"))
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        return await self._session.ws_connect(self.upstream_url + request.path_qs, headers=headers,
                                              protocols=protocols, autoping=False, max_msg_size=0)

    async def _respond(self, request: web.Request, answer: aiohttp.ClientResponse) -> web.StreamResponse:
        headers = _without_hops(answer.headers)
        if _gets_script(request, answer):
            raw = await answer.read()
            plain = page.decoded(raw, answer.headers.get("Content-Encoding"))
            if plain is not None:
                raw = page.inject(plain, answer.charset, self._generation)
                for validator in ("Content-Encoding", "ETag", "Last-Modified"):  # not the app's bytes any more
                    headers.popall(validator, None)
                headers["Content-Length"] = str(len(raw))
                headers["Cache-Control"] = "no-store"  # a reload must fetch the new page, never revalidate
            return web.Response(status=answer.status, reason=answer.reason, headers=headers, body=raw)
        # No Content-Length: aiohttp chunks it for HTTP/1.1 and closes the connection for HTTP/1.0.
        response = web.StreamResponse(status=answer.status, reason=answer.reason, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in answer.content.iter_any():  # as it comes: streamed and SSE responses flow
                await response.write(chunk)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            # The app went away mid-response (a restart): the browser must see the response cut, not
            # complete (an EventSource then connects again, to the new process).
            if request.transport is not None:
                request.transport.close()
            return response
        except ConnectionResetError:  # the browser went away
            return response
        await response.write_eof()
        return response

    # --- the live-reload stream -----------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._streams.add(queue)
        try:
            await response.write(b"retry: 500\n\n" + page.sse("hello", {"generation": self._generation,
                                                                           "error": self._error}))
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), 15)
                except asyncio.TimeoutError:
                    message = b": still here\n\n"  # a comment: a tab that went away is noticed
                if not message:
                    break
                await response.write(message)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(queue)
        return response

    def _broadcast(self, message: bytes) -> None:
        for queue in self._streams:
            queue.put_nowait(message)


def _without_hops(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """`headers` without the hop-by-hop ones, and those their Connection header names."""
    named = {h.strip().lower() for v in _all(headers, "Connection") for h in v.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP and k.lower() not in named)


def _forwarded(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """A request's headers for the app: as the browser sent them, but for hop-by-hop ones, Expect (aiohttp
    answered it already) and the length (the body is sent whole)."""
    kept = _without_hops(headers)
    for gone in ("Content-Length", "Expect"):
        kept.popall(gone, None)
    return kept


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    return list(getall(name, [])) if getall is not None else [headers[name]] if name in headers else []


def _gets_script(request: web.Request, answer: aiohttp.ClientResponse) -> bool:
    """An HTML document a browser navigated to (not a fragment fetched by a script, not a range), with a
    body: the live-reload script goes in."""
    destination = request.headers.get("Sec-Fetch-Dest", "document")
    return (page.is_html(answer.headers.get("Content-Type")) and request.method != "HEAD"
            and destination in ("document", "iframe") and (answer.status == 200 or answer.status >= 400))
