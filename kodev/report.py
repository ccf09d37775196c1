"""What one command's build came to, as data: the UI renders it (one line), the benchmark and tests read it.

Below the stages that produce it (deliver, rebuild) and beside the UI that renders it: it imports neither."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kodev.debug.rpc import Restarted
from kodev.publish import Published

Outcome = Literal["built", "rebuilt", "unchanged", "image"]
# How a build reached a workload: 'started' (it was down), 'recreated' (a new container), 'swapped' (the binary
# replaced in place), 'kept' (nothing was needed), 'rolled-out' (a Kubernetes object applied with the new
# digest, its new pods Ready), 'deferred' (a compose service or Kubernetes object: the project comes up whole
# once every kodev image exists). README's `delivered` event lists exactly these.
DeliveryHow = Literal["started", "recreated", "swapped", "kept", "rolled-out", "deferred"]


@dataclass(frozen=True)
class Delivered:
    """What a delivery did for one workload."""

    service: str
    how: DeliveryHow
    seconds: float
    container_id: str | None = None  # a new container whose logs are to be followed
    note: str = ""  # something the user should know (a swap that fell back to a recreate, and why)
    debugger: str = ""  # kodev debug: a new Delve listens here (HOST:PORT), for the IDE to attach to
    restarted: Restarted | None = None  # kodev debug: Delve restarted the process on the new build


@dataclass(frozen=True)
class CommandReport:
    """`total` runs from the start of `go build` (or of the image, without one) to serving.

    outcome: 'built' (first build in a loop), 'rebuilt', 'unchanged' (same binary and kodata: nothing
    published or delivered), 'image' (`kodev build` and `kodev run`: built and published, no loop).
    """

    name: str
    outcome: Outcome
    total: float
    go: float | None
    image: float
    published: Published | None = None
    delivered: tuple[Delivered, ...] = ()


class BuildProgress:
    """What a compile tells the UI as it runs: call it with each package Go starts compiling; `direct` is set
    when kodev ran the compile and link itself instead of go build (kodev/directbuild.py)."""

    def __init__(self, on_package: Callable[[str], None]) -> None:
        self._on_package = on_package
        self.direct = False

    def __call__(self, import_path: str) -> None:
        self._on_package(import_path)
