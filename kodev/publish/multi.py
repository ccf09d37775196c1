"""Publish to several destinations at once (ko's MultiPublisher, like `tee`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

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
    """Publishes to each destination in turn; the first one's result is the answer, the others' ride along
    in its `elsewhere`. With `on_failure`, a failure of another destination is told to it and the first's
    result still stands (a watch keeps serving from the daemon while a registry is down)."""

    def __init__(self, first: Publisher, *others: Publisher,
                 on_failure: Callable[[KodevError], None] | None = None) -> None:
        self.destinations = (first, *others)
        self.on_failure = on_failure

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        first, *others = self.destinations
        result = first.publish(image, ref, hints)
        also: list[Published] = []
        for destination in others:
            try:
                also.append(destination.publish(image, ref, hints))
            except KodevError as exc:
                if self.on_failure is None:
                    raise
                self.on_failure(exc)
        return dataclasses.replace(result, elsewhere=(*result.elsewhere, *also)) if also else result

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
