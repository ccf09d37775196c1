"""Delivery by recreating the container: stop (SIGTERM, grace period), remove, create on the new image, start.

The old container is renamed and stopped while the new image loads (`Replacement`), so its graceful
shutdown costs nothing on the way to serving; if the load fails it is started again under its name.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kodev.containers import ContainerRuntime
from kodev.deliver import Delivered, Delivery, DeliveryHow, OneContainer, Pending, Release
from kodev.deliver.replacement import Replacement
from kodev.publish import Published
from kodev.services import ContainerSpec


class RecreateDelivery(OneContainer):
    """One service whose container is recreated on every new image (or started, when it is down)."""

    def __init__(self, spec: ContainerSpec, containers: ContainerRuntime) -> None:
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
        if not isinstance(previous, RecreateDelivery) or previous.spec.name != self.spec.name:
            return False
        self.stale = previous.spec != self.spec or type(previous) is not type(self)
        self.container_id, self.down = previous.hand_over()
        return True

    def begin(self, release: Release) -> Pending:
        return _Recreating(self, self._replacement(), release.ref)

    def _replacement(self) -> Replacement | None:
        """Begin replacing the current container, if there is one (renamed and stopped in the background)."""
        if self.container_id is None:
            return None
        replacement = Replacement(self.containers, self.container_id, self.spec)
        self.expects_exit()
        return replacement

    def runs(self, container_id: str | None) -> None:
        super().runs(container_id)
        self.stale = False

    def restored(self, container_id: str) -> None:
        """The container being replaced was started again (the new image never arrived): it runs on."""
        self.runs(container_id)

    def start(self, ref: str) -> str:
        """Create and start this service's container on `ref` (nothing runs it now); its ID."""
        return self.containers.create_and_start(self.spec, ref)

    def close(self) -> None:
        pass

    def started(self, delivered: Delivered) -> Delivered:
        """A new container of this service runs (`delivered` says how): what to report of it."""
        return delivered


class _Recreating:
    """The container being replaced (or started) while the image loads."""

    def __init__(self, delivery: RecreateDelivery, replacement: Replacement | None, ref: str, note: str = "",
                 create: Callable[[], str] | None = None) -> None:
        """`create` makes the new container (not started) when it needs more than its spec (the supervisor)."""
        self.delivery = delivery
        self.replacement = replacement
        self.ref = ref
        self.note = note
        self.create = create

    def complete(self, published: Published | None) -> Delivered:
        started = time.monotonic()
        how: DeliveryHow
        if self.replacement is not None:
            container_id, how = self.replacement.finish(self.ref, self.create), "recreated"
        else:
            container_id, how = self.delivery.start(self.ref), "started"
        self.delivery.runs(container_id)
        return self.delivery.started(Delivered(self.delivery.spec.service, how, time.monotonic() - started,
                                               container_id, self.note))

    def abort(self) -> Delivered | None:
        if self.replacement is None:
            return None
        self.replacement.undo()
        self.delivery.restored(self.replacement.old_id)
        return Delivered(self.delivery.spec.service, "kept", 0.0, self.replacement.old_id)
