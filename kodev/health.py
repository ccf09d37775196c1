"""When the watch loop looks at the Docker daemon: idle health checks, and backoff while it is away.

`DaemonPacer` is timing only (no I/O, tested directly); `DaemonHealth` asks the daemon and says what changed."""

from __future__ import annotations

import time

from kodev.daemon import Daemon
from kodev.ui import UI

HEALTH_SECONDS = 2.0  # how often an idle loop checks the daemon and its containers
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


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
