"""Delivery for commands no service runs: the image is published and that is all (images for compose or other
tools stay fresh)."""

from __future__ import annotations

from kodev.deliver import Delivered, Delivery, Release
from kodev.publish import Published


class _Nothing:
    def complete(self, published: Published | None) -> Delivered:
        return Delivered(service="", how="kept", seconds=0.0)

    def abort(self) -> Delivered | None:
        return None


class ImageOnly:
    service: str | None = None
    stop_timeout = 0

    def prepare(self) -> None:
        pass

    def wants(self, release: Release) -> bool:
        return False

    def begin(self, release: Release) -> _Nothing:
        return _Nothing()

    def owns(self, container_id: str) -> bool:
        return False

    def lost(self) -> None:
        pass

    def container(self) -> str | None:
        return None

    def close(self) -> None:
        pass

    def missed(self, ended_at: float) -> bool:
        return False

    def take_over(self, previous: Delivery) -> bool:
        return False
