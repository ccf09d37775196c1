"""The dev proxies of one watch session: one asyncio event loop in a thread of its own, one `ServiceProxy` per
service that has `proxy` set. The watch loop owns a `Proxies` and talks to the proxies only through it:
`apply` (at start and on every kodev.toml reload), `gate(service)` for its delivery, `build_failed` /
`build_ok` for the overlay, `close`. `hold` waits until the proxy holds (the old process must still be
there when it opens its sentinel); everything else is sent and not waited for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from kodev.errors import ConfigError
from kodev.proxy.spec import ProxySpec, join

log = logging.getLogger(__name__)


class ProxyReport(Protocol):
    """Where the proxies' news goes (the UI)."""

    def proxy_listening(self, service: str, address: str, upstream: str) -> None: ...

    def proxy_reloaded(self, service: str, held: int, longest: float) -> None: ...


class Gate:
    """One service's proxy, as its delivery sees it: hold before a release begins, release once it is done."""

    def __init__(self, proxies: Proxies, service: str) -> None:
        self._proxies, self.service = proxies, service

    def hold(self) -> None:
        self._proxies.call(self.service, "hold", wait=True)

    def release(self) -> None:
        self._proxies.call(self.service, "release")


class Proxies:
    def __init__(self, report: ProxyReport) -> None:
        self.report = report
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: dict[str, Any] = {}  # service -> ServiceProxy (imported with aiohttp, when first needed)
        self._specs: dict[str, ProxySpec] = {}

    def apply(self, specs: Mapping[str, ProxySpec], where: str) -> None:
        """Run exactly these proxies (service -> spec): those whose spec changed are started again. A proxy
        that cannot listen is a ConfigError naming `where` (the config, or the flag)."""
        for service in [s for s in self._running if self._specs.get(s) != specs.get(s)]:
            self._submit(self._running.pop(service).stop()).result(10)
        if any(service not in self._running for service in specs) and self._loop is None:
            self._start_loop()
        from kodev.proxy.server import ProxySettings, ServiceProxy

        for service, spec in specs.items():
            if service in self._running:
                continue
            proxy = ServiceProxy(ProxySettings(service, spec.listen, spec.upstream, spec.ready, spec.hold_seconds),
                                 lambda name, held: self.report.proxy_reloaded(name, held.count, held.longest))
            try:
                self._submit(proxy.start()).result(10)
            except OSError as exc:
                raise ConfigError(f"{where}: services.{service}.proxy: cannot listen on {spec.address} "
                                  f"({exc.strerror or exc}). Free that port or choose another `proxy`.") from None
            self._running[service] = proxy
            self.report.proxy_listening(service, spec.address, join(spec.upstream))
        self._specs = dict(specs)

    def gate(self, service: str) -> Gate | None:
        return Gate(self, service) if service in self._running else None

    def build_failed(self, output: str) -> None:
        for service in self._running:
            self.call(service, "build_failed", output)

    def build_ok(self) -> None:
        for service in self._running:
            self.call(service, "build_ok")

    def call(self, service: str, method: str, *args: Any, wait: bool = False) -> None:
        proxy = self._running.get(service)
        if proxy is None:
            return
        done = self._submit(getattr(proxy, method)(*args))
        if wait:
            try:
                done.result(5)
            except Exception as exc:  # a proxy that cannot hold must not stop the delivery
                log.debug("proxy %s: %s failed: %s", service, method, exc)

    def close(self) -> None:
        for proxy in self._running.values():
            try:
                self._submit(proxy.stop()).result(5)
            except Exception as exc:
                log.debug("stopping a proxy: %s", exc)
        self._running.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop = None

    def _start_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dev-proxy", daemon=True)
        self._thread.start()

    def _submit(self, work: Coroutine[Any, Any, Any]) -> Future[Any]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop)
