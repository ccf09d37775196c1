"""Remove the images a publish replaced, once nothing uses them (a wrapper of any daemon-backed publisher).

A replaced image is still in use while the old container runs, so removal is deferred to `prune`, which
the watch loop calls after the new containers took over and `kodev build` calls on close.

To prune, kodev tags a replaced image with a tag of its own (`HOLD_REPO:<pid>-<id>`) and removes that tag,
never the image by ID: the daemon deletes the image only if no other tag and no container uses it, in one
step. A tag left by a prune a container refused is removed by the next; a killed kodev's, by the next
watch's sweep. The tagging is prune's work, after delivery: nothing is added to the path to serving.
(Removing by ID after checking for tags raced with another kodev loading the byte-identical image under
its own name in between: that kodev's tag went too.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from kodev.errors import DaemonError
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.publish import ImageStore, Published, Publisher

log = logging.getLogger(__name__)
HOLD_REPO = "kodev.replaced/image"  # a repository nobody pushes to: kodev's hold on images it replaced


def hold_ref(image_id: str, pid: int | None = None) -> str:
    """kodev's hold tag on a replaced image: the holding kodev's pid, then the image ID (a sweep by a later
    kodev removes the holds of one that was killed before it pruned)."""
    return f"{HOLD_REPO}:{os.getpid() if pid is None else pid}-{image_id.removeprefix('sha256:')[:64]}"


def sweep_holds(daemon: ImageStore) -> list[str]:
    """Remove the hold tags of kodevs that are gone (killed outright before they pruned): their images go too
    unless another name or a container uses them. The tags removed."""
    removed = []
    try:
        tags = [t for image in daemon.api.images(name=HOLD_REPO) for t in image.get("RepoTags") or []]
    except OSError as exc:
        log.debug("cannot list kodev's held images: %s", exc)
        return []
    for tag in tags:
        pid = tag.rsplit(":", 1)[-1].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            daemon.api.remove_image(tag, noprune=False)
            removed.append(tag)
        except OSError as exc:  # a container still uses it, or it went meanwhile
            log.debug("kept %s: %s", tag, getattr(exc, "explanation", None) or exc)
    return removed


def _alive(pid: int) -> bool:
    if pid > 2**22:  # beyond Linux's pid_max: no process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        """Remove a replaced kodev image unless another tag or a container uses it (a container still running
        on it refuses: tried again on the next prune). Only images with kodev's command label are touched:
        held by kodev's own tag, then that tag removed, never the image by ID."""
        try:
            found = self.daemon.inspect(image_id)
            if found is None or COMMAND_LABEL not in ((found.get("Config") or {}).get("Labels") or {}):
                return False
            repository, tag = hold_ref(image_id).rsplit(":", 1)
            self.daemon.api.tag(image_id, repository, tag)
            self.daemon.api.remove_image(hold_ref(image_id), noprune=False)
        except (OSError, DaemonError) as exc:  # refused (a container uses it: APIError is an OSError), or gone
            if "No such image" in str(getattr(exc, "explanation", None) or exc):
                return False  # someone removed it (docker rmi, a prune): nothing left to do
            log.debug("kept image %s: %s", image_id[:19], getattr(exc, "explanation", None) or exc)
            self._in_use.add(image_id)
            return False
        try:  # removed, or only untagged: another tag (docker tag, or another kodev's name) keeps it
            return self.daemon.inspect(image_id) is None
        except (OSError, DaemonError):
            return False

    def close(self) -> None:
        try:
            self.prune()
        finally:
            self.inner.close()  # the inner destinations finish their work whatever pruning met
