"""When the watch loop looks at the Docker daemon: idle health checks, and backoff while it is away.

`DaemonPacer` is timing only (no I/O, tested directly); `DaemonHealth` asks the daemon and says what changed."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Literal

from kodev.daemon import Daemon, reason
from kodev.errors import DaemonError, KodevError
from kodev.ui import UI

log = logging.getLogger(__name__)

# An idle check's finding: 'well' (or not due), 'away' (still or newly gone), 'back' (after being away: recover),
# 'vanished' (the daemon answers but containers of ours are gone: recover).
IdleFinding = Literal["well", "away", "back", "vanished"]

HEALTH_SECONDS = 2.0  # how often an idle loop checks the daemon and its containers
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


class DaemonLost(Exception):
    """The daemon stopped answering during a round; the loop recovers when it is back."""


class DaemonPacer:
    """Timing only (no I/O): whether a check is due, and how long to wait after a failed retry."""

    def __init__(self) -> None:
        self.down = False
        self._next = 0.0
        self._delay = RETRY_FIRST_SECONDS

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def soon(self, seconds: float = 0.5) -> None:
        """Check again shortly (a container exited: a daemon shutting down stops its containers first)."""
        self._next = min(self._next, time.monotonic() + seconds)

    def checked(self) -> None:
        self._next = time.monotonic() + HEALTH_SECONDS

    def lost(self) -> bool:
        """Mark the daemon away; True the first time (say so once)."""
        if self.down:
            return False
        self.down = True
        self._delay = RETRY_FIRST_SECONDS
        self._next = time.monotonic() + self._delay
        return True

    def retry_failed(self) -> None:
        self._delay = min(self._delay * 2, RETRY_MAX_SECONDS)  # back off, never spin
        self._next = time.monotonic() + self._delay

    def back(self) -> None:
        self.down = False
        self.checked()


class DaemonHealth:
    """Whether the daemon answers: asked every few idle seconds, and with backoff while it is away."""

    def __init__(self, daemon: Daemon, ui: UI) -> None:
        self.daemon = daemon
        self.ui = ui
        self.pacer = DaemonPacer()

    @property
    def down(self) -> bool:
        return self.pacer.down

    def lost(self) -> None:
        """The daemon stopped answering: say so once, then retry with backoff."""
        if self.pacer.lost():
            self.ui.daemon_lost(self.daemon.endpoint)

    def due(self) -> bool:
        return self.pacer.due()

    def check(self) -> bool:
        """A due check (a ping: cheap). True when the daemon answers; False marks it lost."""
        if self.daemon.reachable():
            if self.pacer.down:
                self.pacer.back()
                self.ui.daemon_back()
            else:
                self.pacer.checked()
            return True
        if self.pacer.down:
            self.pacer.retry_failed()
        else:
            self.lost()
        return False

    def soon(self) -> None:
        self.pacer.soon()

    @contextlib.contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """A daemon call outside a round failed (the SDK's errors are OSErrors): a daemon that went away is
        waited for like any other time it does; anything else is reported, and the loop goes on."""
        import docker.errors
        import urllib3

        try:
            yield
        except DaemonLost:
            self.lost()
        except (OSError, urllib3.exceptions.HTTPError, docker.errors.DockerException, DaemonError) as exc:
            if not self.daemon.reachable():
                self.lost()
                return
            log.debug("%s failed", doing, exc_info=True)
            self.ui.error(exc if isinstance(exc, KodevError) else DaemonError(
                f"kodev could not {doing}: {reason(exc)}. The running containers keep what they have; save "
                "again to retry."))

    def idle_check(self, vanished: Callable[[], list[str]]) -> IdleFinding:
        """Every few idle seconds: is the daemon there, and are our containers (`vanished` names the gone)?"""
        if not self.due():
            return "away" if self.down else "well"
        was_down = self.down
        if not self.check():
            return "away"
        if was_down:
            return "back"
        try:
            gone = vanished()
        except OSError:  # the SDK's connection errors: gone between the ping and now
            self.lost()
            return "away"
        if gone:
            self.ui.warn(f"the container of {', '.join(s for s in gone if s)} is gone (removed, or the daemon "
                         "restarted); recreating")
            return "vanished"
        return "well"
