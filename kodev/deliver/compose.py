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
from pathlib import Path
from typing import Any

from kodev.compose import ComposeCLI, ComposeError, ComposeProject, containers, down, stop, up
from kodev.deliver import Delivered, OneContainer, Release
from kodev.errors import KodevError
from kodev.publish import Published

log = logging.getLogger(__name__)


class ComposeStack:
    """One compose project under kodev watch: brought up whole after the first build, stopped at the end."""

    def __init__(self, cli: ComposeCLI, project: ComposeProject, override: Path, client: Any,
                 take_down: bool = False) -> None:
        self.cli = cli
        self.project = project
        self.override = override
        self.client = client
        self.take_down = take_down
        self.started = False

    def start(self) -> dict[str, str]:
        """`up -d` for the whole project (a running one is adopted); the container of each service."""
        up(self.cli, self.project, self.override)
        self.started = True
        return self.running()

    def running(self) -> dict[str, str]:
        return {service: ids[0] for service, ids in containers(self.client, self.project.name).items() if ids}

    def replace(self, service: str) -> str | None:
        """Bring one service onto its (new) image; its container now."""
        up(self.cli, self.project, self.override, services=[service], no_deps=True)
        return self.running().get(service)

    def apply(self, project: ComposeProject) -> dict[str, str]:
        """The compose files changed (and are valid): let Compose bring the project in line with them."""
        self.project = project
        return self.start()

    def shutdown(self) -> str:
        """Stop (or take down) the project; what was done, for the user."""
        if not self.started:
            return ""
        if self.take_down:
            down(self.cli, self.project, self.override)
            return f"took compose project {self.project.name} down (volumes kept)"
        stop(self.cli, self.project, self.override)
        return f"stopped compose project {self.project.name} (containers and volumes kept)"


class ComposeService(OneContainer):
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

    def begin(self, release: Release) -> _Replacing:
        return _Replacing(self)

    def close(self) -> None:
        pass  # the stack stops the project as a whole

    def adopt(self, container_id: str | None) -> None:
        self.container_id = container_id
        self.down = container_id is None


class _Replacing:
    def __init__(self, delivery: ComposeService) -> None:
        self.delivery = delivery

    def complete(self, published: Published | None) -> Delivered:
        delivery = self.delivery
        assert delivery.service is not None
        if not delivery.stack.started:  # the first build: the project comes up whole after it
            return Delivered(delivery.service, "pending", 0.0)
        started = time.monotonic()
        try:
            container_id = delivery.stack.replace(delivery.service)
        except ComposeError as exc:
            raise KodevError(f"compose could not replace {delivery.service}: {exc}") from None
        previous, delivery.container_id = delivery.container_id, container_id
        delivery.down = container_id is None
        how = "recreated" if container_id != previous else "kept"
        return Delivered(delivery.service, how, time.monotonic() - started,
                         container_id if container_id != previous else None)

    def abort(self) -> None:
        pass  # nothing was touched before the image arrived
