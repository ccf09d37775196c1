"""Stage 'publish': where a built image goes, behind one small interface (ko's `publish.Interface`).

One module per destination (`daemon`, `tarball`), and features as wrappers of the interface (`multi` sends to
several destinations, `pruning` removes the images a publish replaced). The builder only ever sees a
`Publisher`; which destinations sit behind it is decided where the session is put together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kodev.image.assemble import Image


@dataclass(frozen=True)
class Published:
    """Where an image went and what it cost. `replaced` is the image the reference pointed at before."""

    ref: str
    image_id: str
    bytes_sent: int
    seconds: float
    slim: bool = False  # only what the destination lacked was sent
    replaced: str | None = None


class Publisher(Protocol):
    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        """Send `image` under `ref`. `hints` name images the destination may share bottom layers with."""
        ...

    def close(self) -> None:
        """Finish what was deferred (an archive written at the end, replaced images removed)."""
        ...
