"""Delivery through Docker Compose: the project stays Compose's, kodev only swaps the images of its services.

The whole project is brought up once, after the first build of every kodev service (`ComposeStack.start`),
through the real Compose CLI with kodev's override file; from then on a new image replaces exactly the
services that run it (`up -d --no-deps SERVICE`: Compose recreates a container whose image ID changed
and touches nothing else). Ctrl-C stops the project (as `docker compose up` in the foreground does), or
takes it down with `--down`; volumes are never removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kodev.compose import ComposeCLI, ComposeError, ComposeProject, containers, down, stop, up, write_override
from kodev.deliver import Delivered, Delivery, DeliveryHow, Done, OneContainer, Pending, Release
from kodev.deliver.compose_swap import ComposeSwap
from kodev.errors import KodevError
from kodev.publish import Published

log = logging.getLogger(__name__)


class ComposeStack:
    """One compose project under kodev watch: brought up whole after the first build, stopped at the end.

    With `swap`, kodev's services whose binary alone changed get it swapped in place (compose_swap.py)."""

    def __init__(self, cli: ComposeCLI, project: ComposeProject, images: Mapping[str, str], client: Any,
                 take_down: bool = False, swap: ComposeSwap | None = None) -> None:
        self.cli = cli
        self.project = project
        self.images = dict(images)  # service -> the reference kodev builds for it
        self.client = client
        self.take_down = take_down
        self.swapping = swap  # None: every service is recreated
        self.override = write_override(project, self.images)
        self.started = False

    def start(self) -> dict[str, str]:
        """`up -d` for the whole project (a running one is adopted); the container of each service."""
        if self.swapping is not None and self.images:  # the probe needs an image: after the first build
            extras = self.swapping.prepare(self.project, next(iter(self.images.values())))
            self.override = write_override(self.project, self.images, extras=extras)
        up(self.cli, self.project, self.override)
        self.started = True
        return self.running()

    def running(self) -> dict[str, str]:
        return {service: ids[0] for service, ids in containers(self.client, self.project.name).items() if ids}

    def replace(self, service: str) -> str | None:
        """Bring one service onto its (new) image; its container now."""
        if self.swapping is not None:
            self.swapping.unswap(service)
        up(self.cli, self.project, self.override, services=[service], no_deps=True)
        return self.running().get(service)

    def apply(self, project: ComposeProject) -> dict[str, str]:
        """The compose files changed (and are valid): let Compose bring the project in line with them."""
        self.project = project
        return self.start()

    def shutdown(self) -> str:
        """Stop (or take down) the project; what was done, for the user."""
        if self.swapping is not None:
            self.swapping.close()
        if not self.started:
            return ""
        if self.take_down:
            down(self.cli, self.project, self.override)
            if self.swapping is not None:  # no container mounts them any more
                self.swapping.remove_directories()
            return f"took compose project {self.project.name} down (volumes kept)"
        stop(self.cli, self.project, self.override)  # the stopped containers keep mounting the directories
        return f"stopped compose project {self.project.name} (containers and volumes kept)"


class ComposeDelivery(OneContainer):
    """One compose service that runs a kodev image."""

    stop_timeout = 10

    def __init__(self, service: str, stack: ComposeStack) -> None:
        super().__init__()
        self.service: str | None = service
        self.stack = stack

    def prepare(self) -> None:
        pass  # the names are Compose's to choose

    def wants(self, release: Release) -> bool:
        return self.down or release.changed

    def begin(self, release: Release) -> Pending:
        swapping = self.stack.swapping
        assert self.service is not None
        if (release.binary is not None and release.kodata is None and swapping is not None  # (kodata: recreate)
                and swapping.swaps(self.service)
                and self.container_id is not None and not self.down):
            started = time.monotonic()
            try:
                swapping.swap_in(self.service, release.binary)
            except Exception as exc:  # the container went away, its stdin closed...
                log.debug("swap failed", exc_info=True)
                return _Replacing(self, f"swapping the binary into {self.service} failed ({exc}); "
                                        "recreated it instead")
            return Done(Delivered(self.service, "swapped", time.monotonic() - started))
        return _Replacing(self)

    def close(self) -> None:
        pass  # the stack stops the project as a whole

    def take_over(self, previous: Delivery) -> bool:
        if not isinstance(previous, ComposeDelivery) or previous.service != self.service:
            return False
        self.container_id, self.down = previous.hand_over()  # the stack (and its swaps) stay the same
        return True

    def adopt(self, container_id: str | None) -> None:
        """Compose (re)made this service's container: it is the one that runs the service from now on."""
        if self.stack.swapping is not None and self.service is not None and container_id != self.container_id:
            self.stack.swapping.attach(self.service, container_id)
        self.runs(container_id)


class _Replacing:
    def __init__(self, delivery: ComposeDelivery, note: str = "") -> None:
        self.delivery = delivery
        self.note = note

    def complete(self, published: Published | None) -> Delivered:
        delivery = self.delivery
        assert delivery.service is not None
        if not delivery.stack.started:  # the first build: the project comes up whole after it
            return Delivered(delivery.service, "deferred", 0.0)
        started = time.monotonic()
        try:
            container_id = delivery.stack.replace(delivery.service)
        except ComposeError as exc:
            raise KodevError(f"compose could not replace {delivery.service}: {exc}") from None
        previous = delivery.container_id
        delivery.adopt(container_id)
        how: DeliveryHow = "recreated" if container_id != previous else "kept"
        return Delivered(delivery.service, how, time.monotonic() - started,
                         container_id if container_id != previous else None, self.note)

    def abort(self) -> Delivered | None:
        return None  # nothing was touched before the image arrived
