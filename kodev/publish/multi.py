"""Publish to several destinations at once (ko's MultiPublisher, like `tee`)."""

from __future__ import annotations

from collections.abc import Sequence

from kodev.image.assemble import Image
from kodev.publish import Published, Publisher


class MultiPublisher:
    """Publishes to each destination in turn; the first one's result is the answer (the others follow it)."""

    def __init__(self, first: Publisher, *others: Publisher) -> None:
        self.destinations = (first, *others)

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        results = [destination.publish(image, ref, hints) for destination in self.destinations]
        return results[0]

    def close(self) -> None:
        for destination in self.destinations:
            destination.close()
