"""Which delivery each service gets: the one place that knows every way a build can reach a workload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kodev.containers import ContainerRuntime
from kodev.debug.delve import DebugSettings
from kodev.deliver import Delivery
from kodev.deliver.compose import ComposeDelivery, ComposeStack
from kodev.deliver.debugged import DebugDelivery, DebugTarget
from kodev.deliver.image_only import ImageOnly
from kodev.deliver.kubernetes import KubeDelivery
from kodev.deliver.recreate import RecreateDelivery
from kodev.deliver.supervision import Supervision
from kodev.deliver.swap import SwapDelivery
from kodev.kube.stack import KubeStack
from kodev.services import ContainerSpec


def deliveries_for(specs: Sequence[ContainerSpec], compose: Sequence[str], containers: ContainerRuntime,
                   stack: ComposeStack | None, supervision: Supervision | None = None, app: str = "",
                   debug: DebugSettings | None = None, targets: Mapping[str, DebugTarget] | None = None,
                   kube: KubeStack | None = None, import_path: str = "") -> list[Delivery]:
    """One delivery per service (kodev.toml's or a compose project's) or Kubernetes object that names the
    command (`import_path`); none: the image-only one.

    With `supervision` (watch mode, swapping on), a service swaps binaries in place unless its table says
    `swap = false` or it is started only once (`restart = false`). With `debug` (kodev debug), every service
    that kodev restarts runs under Delve, at its port in `targets`."""
    found: list[Delivery] = []
    for spec in specs:
        if supervision and debug and targets and spec.service in targets and spec.restart:
            found.append(DebugDelivery(spec, containers, supervision, app, debug, targets[spec.service]))
        elif supervision and spec.swap and spec.restart:
            found.append(SwapDelivery(spec, containers, supervision, app))
        else:
            found.append(RecreateDelivery(spec, containers))
    if stack is not None:
        found += [ComposeDelivery(service, stack) for service in compose]
    if kube is not None:
        found += [KubeDelivery(kube, thing, import_path) for thing in kube.running(import_path)]
    return found or [ImageOnly()]
