"""Remove the images a publish replaced, once nothing uses them (a wrapper of any daemon-backed publisher).

A replaced image is still in use while the old container runs, so removal is deferred to `prune`, which
the watch loop calls after the new containers took over and `kodev build` calls on close.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kodev.errors import DaemonError
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.publish import ImageStore, Published, Publisher

log = logging.getLogger(__name__)


class PruningPublisher:
    """A `Publisher` (publishes through `inner`, noting what each publish replaced) and an `ImagePruner`."""

    def __init__(self, inner: Publisher, daemon: ImageStore) -> None:
        self.inner = inner
        self.daemon = daemon
        self._replaced: list[str] = []
        self._in_use: set[str] = set()  # refused by the daemon on the last try: a container uses them

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        published = self.inner.publish(image, ref, hints)
        self._replaced.extend(i for i in published.replaced if i not in self._replaced)
        return published

    def prune(self) -> list[str]:
        """Remove the replaced kodev images nothing uses any more; the IDs removed. One a container still
        runs (a swapped binary keeps the container on its first image) is tried again on the next prune."""
        removed = [image_id for image_id in self._replaced if self.forget(image_id)]
        self._replaced = [i for i in self._replaced if i in self._in_use and i not in removed]
        self._in_use.clear()
        return removed

    def forget(self, image_id: str) -> bool:
        """Remove an image kodev made, unless a container or another tag uses it.

        Only images with kodev's command label are touched, and never forcibly: the daemon refuses while
        anything still uses the image, and that refusal is the answer.
        """
        try:
            found = self.daemon.inspect(image_id)
        except (OSError, DaemonError) as exc:  # the daemon went away: pruning is deferred work, try later
            log.debug("kept image %s: %s", image_id[:19], exc)
            self._in_use.add(image_id)
            return False
        if found is None or COMMAND_LABEL not in ((found.get("Config") or {}).get("Labels") or {}):
            return False
        if found.get("RepoTags"):  # someone tagged it (docker tag): removing it by ID would untag and delete it
            log.debug("kept image %s: tagged %s", image_id[:19], ", ".join(found["RepoTags"]))
            return False
        try:
            self.daemon.api.remove_image(image_id, noprune=False)
        except OSError as exc:  # refused (a container uses it: APIError is an OSError), or the daemon went away
            log.debug("kept image %s: %s", image_id[:19], getattr(exc, "explanation", None) or exc)
            self._in_use.add(image_id)
            return False
        return True

    def close(self) -> None:
        try:
            self.prune()
        finally:
            self.inner.close()  # the inner destinations finish their work whatever pruning met
