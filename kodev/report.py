"""What one command's build came to, as data: the UI renders it (one line), the benchmark and tests read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kodev.deliver import Delivered
from kodev.publish import Published

Outcome = Literal["built", "rebuilt", "unchanged", "image"]


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

    @property
    def delivery_seconds(self) -> float:
        return sum(d.seconds for d in self.delivered)
