"""Stage 'deliver': how a new build reaches what runs it, behind one interface, one module per way.

A `Delivery` stands for one workload (a service), or for none at all (`image_only`). Per build the loop
asks each delivery whether it `wants` the release, `begin`s those that do before the image is published
(a recreate starts stopping the old container so its graceful shutdown overlaps the load), publishes, then
`complete`s them with what was published — or `abort`s them if publishing failed, which must leave the
old workload serving. Adding a way (swap the binary in place, a Compose service) is one new module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kodev.image.assemble import Image
from kodev.publish import Published
from kodev.report import Delivered, DeliveryHow

__all__ = ["Delivered", "Delivery", "DeliveryHow", "Done", "OneContainer", "Pending", "Release"]


@dataclass(frozen=True)
class Release:
    """A build of one command on its way to the workloads that run it."""

    ref: str  # the image reference it is published under
    image: Image | None  # None when only the binary changed: deliveries begin before the image is made
    changed: bool  # differs from the image published before (False: same binary and kodata)
    # A change that can reach a running container in place (base and config as before): the new binary,
    # and/or an archive of the kodata files that changed (none removed), to extract at /.
    binary: Path | None = None
    kodata: Path | None = None

    @property
    def in_place(self) -> bool:
        return self.binary is not None or self.kodata is not None


class Pending(Protocol):
    """A release on its way to one workload. It changes its delivery's state only through the delivery's
    own methods (`runs`, `kept_on`): the delivery owns which container serves."""

    def complete(self, published: Published | None) -> Delivered:
        """Bring the release to the workload (`published` is None when the image did not change)."""
        ...

    def abort(self) -> Delivered | None:
        """Publishing failed: leave (or put back) the old workload serving. A container started again is
        returned (`how` 'kept'), so that its logs are followed again."""
        ...


class Done:
    """A delivery finished in `begin` (a binary swapped in place): `complete` reports it, `abort` has nothing
    to undo — the new binary serves already, and the image follows with the next build."""

    def __init__(self, delivered: Delivered) -> None:
        self.delivered = delivered

    def complete(self, published: Published | None) -> Delivered:
        return self.delivered

    def abort(self) -> Delivered | None:
        return None


class Delivery(Protocol):
    service: str | None  # None: no workload (an image-only command)
    stop_timeout: int  # seconds between SIGTERM and SIGKILL when its workload stops

    def prepare(self) -> None:
        """Before anything is built: make sure the workload can be started (its name is free, or ours)."""
        ...

    def wants(self, release: Release) -> bool:
        """Whether this release must reach the workload (a changed image, or a workload that is down)."""
        ...

    def begin(self, release: Release) -> Pending: ...

    def owns(self, container_id: str) -> bool:
        """Whether `container_id` is the workload's current container (its exit is news)."""
        ...

    def lost(self) -> None:
        """The workload stopped or vanished: the next release starts it again."""
        ...

    def container(self) -> str | None:
        """The workload's current container, if it has one."""
        ...

    def close(self) -> None:
        """kodev is stopping: release what this delivery holds besides containers (those are cleaned up
        by session label, all at once)."""
        ...

    def missed(self, ended_at: float) -> bool:
        """The workload's container ended at `ended_at` (epoch seconds): whether the last release reached it
        only after it had stopped (a binary swapped into a container whose app had just exited), so that it
        is started again rather than reported as a crash."""
        ...

    def take_over(self, previous: Delivery) -> bool:
        """kodev.toml changed: this delivery (of the new config) takes over the workload `previous` runs, so
        that it serves until this delivery's first release replaces it. False: not the same workload."""
        ...


class OneContainer:
    """The state every delivery with one container per service shares: which container, and whether it is
    down (none yet, or it exited): a down workload wants the next release even if the image did not change.
    Only its own methods write it."""

    def __init__(self) -> None:
        self.container_id: str | None = None
        self.down = True

    def runs(self, container_id: str | None) -> None:
        """The workload's container from now on (a release reached it; None: there is none)."""
        self.container_id, self.down = container_id, container_id is None

    def missed(self, ended_at: float) -> bool:
        return False

    def expects_exit(self) -> None:
        """The current container is being replaced: its exit is expected now, not news."""
        self.container_id = None

    def owns(self, container_id: str) -> bool:
        return container_id == self.container_id

    def lost(self) -> None:
        self.down = True

    def container(self) -> str | None:
        return self.container_id

    def hand_over(self) -> tuple[str | None, bool]:
        """Give the workload to the delivery that takes it over: its container and whether it is down. This
        one owns nothing afterwards."""
        held = self.container_id, self.down
        self.container_id, self.down = None, True
        return held
