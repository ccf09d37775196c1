"""Which delivery each service gets: the one place that knows every way a build can reach a workload."""

from __future__ import annotations

from collections.abc import Sequence

from kodev.containers import ContainerRuntime
from kodev.deliver import Delivery
from kodev.deliver.compose import ComposeDelivery, ComposeStack
from kodev.deliver.image_only import ImageOnly
from kodev.deliver.recreate import RecreateDelivery
from kodev.deliver.supervision import Supervision
from kodev.deliver.swap import SwapDelivery
from kodev.services import ContainerSpec


def deliveries_for(specs: Sequence[ContainerSpec], compose: Sequence[str], containers: ContainerRuntime,
                   stack: ComposeStack | None, supervision: Supervision | None = None, app: str = ""
                   ) -> list[Delivery]:
    """One delivery per service (kodev.toml's or a compose project's); none: the image-only one.

    With `supervision` (watch mode, swapping on), a service swaps binaries in place unless its table says
    `swap = false` or it is started only once (`restart = false`)."""
    found: list[Delivery] = [
        SwapDelivery(spec, containers, supervision, app) if supervision and spec.swap and spec.restart
        else RecreateDelivery(spec, containers) for spec in specs]
    if stack is not None:
        found += [ComposeDelivery(service, stack) for service in compose]
    return found or [ImageOnly()]
