"""Delivery by recreating the container: stop (SIGTERM, grace period), remove, create on the new image, start.

The old container is renamed and stopped while the new image loads (`Replacement`), so its graceful
shutdown costs nothing on the way to serving; if the load fails it is started again under its name.
"""

from __future__ import annotations

import time

from kodev.containers import Containers, Replacement
from kodev.deliver import Delivered, Delivery, OneContainer, Pending, Release
from kodev.publish import Published
from kodev.services import ContainerSpec


class Recreate(OneContainer):
    """One service whose container is recreated on every new image (or started, when it is down)."""

    def __init__(self, spec: ContainerSpec, containers: Containers) -> None:
        super().__init__()
        self.spec = spec
        self.service: str | None = spec.service
        self.stop_timeout = spec.stop_timeout
        self.containers = containers
        self.stale = False  # the container runs settings of an earlier kodev.toml: the next release replaces it

    def prepare(self) -> None:
        if self.container_id is None:  # a taken-over container holds the name already
            self.containers.claim_name(self.spec)

    def wants(self, release: Release) -> bool:
        return self.down or (self.spec.restart and (release.changed or self.stale))

    def take_over(self, previous: Delivery) -> bool:
        if not isinstance(previous, Recreate) or previous.spec.name != self.spec.name:
            return False
        self.stale = previous.spec != self.spec or type(previous) is not type(self)
        self.container_id, self.down = previous.hand_over()
        return True

    def begin(self, release: Release) -> Pending:
        replacement = None
        if self.container_id is not None:
            replacement = Replacement(self.containers, self.container_id, self.spec)
            self.container_id = None  # its exit is expected now, not news
        return _Recreating(self, replacement, release.ref)

    def close(self) -> None:
        pass


class _Recreating:
    def __init__(self, delivery: Recreate, replacement: Replacement | None, ref: str) -> None:
        self.delivery = delivery
        self.replacement = replacement
        self.ref = ref

    def complete(self, published: Published | None) -> Delivered:
        started = time.monotonic()
        delivery = self.delivery
        if self.replacement is not None:
            container_id, how = self.replacement.finish(self.ref), "recreated"
        else:
            container_id, how = delivery.containers.create_and_start(delivery.spec, self.ref), "started"
        delivery.container_id, delivery.down, delivery.stale = container_id, False, False
        return Delivered(delivery.spec.service, how, time.monotonic() - started, container_id)

    def abort(self) -> None:
        if self.replacement is not None:
            self.replacement.undo()
            self.delivery.container_id = self.replacement.old_id
