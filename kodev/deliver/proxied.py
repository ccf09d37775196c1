"""A delivery behind the dev proxy: the proxy holds new requests from the moment a release begins to reach
the service until it is done, and then (once the new process serves) sends them on and reloads the pages.
Everything else is the wrapped delivery's: this adds the two calls around `begin` and nothing more."""

from __future__ import annotations

from typing import Protocol

from kodev.deliver import Delivered, Delivery, Done, Pending, Release
from kodev.publish import Published


class ProxyGate(Protocol):
    def hold(self) -> None: ...

    def release(self) -> None: ...


class ProxiedDelivery:
    def __init__(self, inner: Delivery, gate: ProxyGate) -> None:
        self.inner = inner
        self.gate = gate
        self.service = inner.service
        self.stop_timeout = inner.stop_timeout

    def begin(self, release: Release) -> Pending:
        self.gate.hold()
        try:
            begun = self.inner.begin(release)
        except BaseException:
            self.gate.release()
            raise
        if isinstance(begun, Done):  # a swap: delivered already
            self.gate.release()
            return begun
        return _Released(begun, self.gate)

    def prepare(self) -> None:
        self.inner.prepare()

    def wants(self, release: Release) -> bool:
        return self.inner.wants(release)

    def owns(self, container_id: str) -> bool:
        return self.inner.owns(container_id)

    def lost(self) -> None:
        self.inner.lost()

    def container(self) -> str | None:
        return self.inner.container()

    def close(self) -> None:
        self.inner.close()

    def missed(self, ended_at: float) -> bool:
        return self.inner.missed(ended_at)

    def take_over(self, previous: Delivery) -> bool:
        return self.inner.take_over(previous.inner if isinstance(previous, ProxiedDelivery) else previous)


class _Released:
    """A release under way behind the proxy: whatever its end, the proxy lets requests go again."""

    def __init__(self, pending: Pending, gate: ProxyGate) -> None:
        self.pending, self.gate = pending, gate

    def complete(self, published: Published | None) -> Delivered:
        try:
            return self.pending.complete(published)
        finally:
            self.gate.release()

    def abort(self) -> Delivered | None:
        try:
            return self.pending.abort()
        finally:
            self.gate.release()


def unwrapped(delivery: Delivery) -> Delivery:
    """The delivery itself, behind its proxy or not (for code that asks what kind it is)."""
    return delivery.inner if isinstance(delivery, ProxiedDelivery) else delivery
