"""Stage 'publish': where a built image goes, behind one small interface (ko's `publish.Interface`).

One module per destination (`daemon`, `tarball`), and features as wrappers of the interface (`multi` sends to
several destinations, `pruning` removes the images a publish replaced). The builder only ever sees a
`Publisher`; which destinations sit behind it is decided where the session is put together. Removing
replaced images is the loop's business, at its own moment: it reaches the loop as an `ImagePruner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kodev.image.assemble import Image


@dataclass(frozen=True)
class Published:
    """Where an image went and what it cost. `replaced`: the images its references (`ref`, and a watch's run
    tag) pointed at before, if other than this one."""

    ref: str
    image_id: str
    bytes_sent: int
    seconds: float
    slim: bool = False  # only what the destination lacked was sent
    replaced: tuple[str, ...] = ()
    elsewhere: tuple[Published, ...] = ()  # the same image sent to other destinations too (a registry)
    destination: str = "daemon"  # "daemon", "tarball" or "registry"


class Publisher(Protocol):
    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        """Send `image` under `ref`. `hints` name images the destination may share bottom layers with."""
        ...

    def close(self) -> None:
        """Finish what was deferred (an archive written at the end, replaced images removed)."""
        ...


class ImagePruner(Protocol):
    def prune(self) -> list[str]:
        """Remove the images publishes replaced that nothing uses any more; the IDs removed. One still in
        use is tried again on the next call."""
        ...


class NoPruning:
    """The `ImagePruner` of a session whose publisher notes no replaced images: it removes nothing."""

    def prune(self) -> list[str]:
        return []


class ImageStore(Protocol):
    """What the daemon-backed publishers ask of a daemon (`kodev.daemon.Daemon`): its images, by reference,
    and its Engine API client (`api`) for loads, tags and removals."""

    endpoint: str

    @property
    def api(self) -> Any: ...

    def inspect(self, ref: str) -> dict[str, Any] | None: ...

    def facts(self) -> tuple[dict[str, Any], dict[str, Any]]: ...
