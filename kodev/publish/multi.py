"""Publish to several destinations at once (ko's MultiPublisher, like `tee`)."""

from __future__ import annotations

from collections.abc import Sequence

from kodev.errors import KodevError
from kodev.image.assemble import Image
from kodev.publish import Published, Publisher


class DestinationsFailed(KodevError):
    """Several destinations failed to finish (`close`); `errors` holds each one's error, in order."""

    def __init__(self, errors: Sequence[KodevError]) -> None:
        super().__init__(f"{len(errors)} image destinations failed to finish: "
                         + " ".join(f"({n}) {error}" for n, error in enumerate(errors, 1)))
        self.errors = tuple(errors)


class MultiPublisher:
    """Publishes to each destination in turn; the first one's result is the answer (the others follow it)."""

    def __init__(self, first: Publisher, *others: Publisher) -> None:
        self.destinations = (first, *others)

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        results = [destination.publish(image, ref, hints) for destination in self.destinations]
        return results[0]

    def close(self) -> None:
        """Close every destination, even after one failed. One failure is raised as it is, several as one
        DestinationsFailed naming each; an unexpected error (a bug) is raised first, keeping its traceback,
        with the others as its cause."""
        failed: list[KodevError] = []
        unexpected: Exception | None = None
        for destination in self.destinations:
            try:
                destination.close()
            except KodevError as exc:
                failed.append(exc)
            except Exception as exc:
                unexpected = unexpected or exc
        combined = (failed[0] if len(failed) == 1 else DestinationsFailed(failed)) if failed else None
        if unexpected is not None:
            raise unexpected from combined
        if combined is not None:
            raise combined
