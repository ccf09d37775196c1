"""Replacing one service's container in two steps around the load of its new image (recreate and swap)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kodev.containers import ContainerRuntime
from kodev.services import ContainerSpec

log = logging.getLogger(__name__)


class Replacement:
    """Replacing one service's container, in two steps around the load of the new image.

    Begun before the load: the old container is renamed out of the way and stopped (SIGTERM, grace
    period) in the background, so its graceful shutdown overlaps the load. `finish` creates and starts
    the new container under the name; `undo` starts the old one again if the new image never arrived.
    """

    def __init__(self, containers: ContainerRuntime, old_id: str, spec: ContainerSpec) -> None:
        self.containers = containers
        self.old_id = old_id
        self.spec = spec
        self._renamed = False
        self._rename_tried = threading.Event()
        self._stopper = threading.Thread(target=self._stop_old, name=f"stop-{spec.service}", daemon=True)
        self._stopper.start()

    def _stop_old(self) -> None:
        try:
            self.containers.rename(self.old_id, f"{self.spec.name}-replaced-{self.old_id[:12]}")
            self._renamed = True
        except Exception as exc:  # gone already, or cannot be renamed: finish() removes it first
            log.debug("cannot rename %s out of the way: %s", self.old_id[:12], exc)
        finally:
            self._rename_tried.set()
        try:
            self.containers.stop(self.old_id, self.spec.stop_timeout)
        except Exception as exc:
            log.debug("stop of the replaced %s: %s", self.old_id[:12], exc)

    def finish(self, image: str, create: Callable[[], str] | None = None) -> str:
        """The new container, started; the old one removed. `create` makes the new container (not started)
        when it needs more than the spec says (the supervisor)."""
        self._rename_tried.wait()
        make = create or (lambda: self.containers.create(self.spec, image))
        new_id = make() if self._renamed else None  # while the old one stops
        self._stopper.join()
        self.containers.remove(self.old_id, 0)
        if new_id is None:
            if create is None:
                return self.containers.create_and_start(self.spec, image)
            self.containers.claim_name(self.spec)
            new_id = create()
        self.containers.start(new_id, self.spec)
        return new_id

    def undo(self) -> None:
        """Bring the old container back under its name (the new image could not be loaded)."""
        self._stopper.join()
        try:
            if self._renamed:
                self.containers.rename(self.old_id, self.spec.name)
            self.containers.resume(self.old_id)
        except Exception as exc:
            log.debug("could not bring back %s: %s", self.old_id[:12], exc)
