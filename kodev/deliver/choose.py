"""Which delivery each service gets: the one place that knows every way a build can reach a workload."""

from __future__ import annotations

from collections.abc import Sequence

from kodev.containers import Containers
from kodev.deliver import Delivery
from kodev.deliver.image_only import ImageOnly
from kodev.deliver.recreate import Recreate
from kodev.services import ContainerSpec


def deliveries_for(specs: Sequence[ContainerSpec], containers: Containers) -> list[Delivery]:
    """One delivery per service; a command no service runs gets the image-only one."""
    if not specs:
        return [ImageOnly()]
    return [Recreate(spec, containers) for spec in specs]
