"""A live status line at the bottom of a terminal while work runs: redrawn in place, erased for other output.

Only `UI` uses it, and only when stderr is a terminal. Every other write to the terminal — a result
line on stderr, a service's log line on stdout (often the same terminal) — goes through `above()`,
which erases the line first and draws it again after, under one lock, so the two never garble.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
REFRESH_SECONDS = 0.2  # the elapsed time ticks; the package count moves with each redraw too
_ERASE = "\r\x1b[2K"  # to the start of the line, then clear it


def wants_status(stream: TextIO) -> bool:
    """A status line only on a real terminal: never in a pipe, a file, or a dumb terminal."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # a closed or exotic stream
        return False


class StatusLine:
    """One line, redrawn every REFRESH_SECONDS by a thread of its own while it is shown."""

    def __init__(self, file: TextIO, lock: threading.RLock) -> None:
        self.file = file
        self.lock = lock
        self._render: Callable[[float], str] | None = None
        self._started = 0.0
        self._shown = False
        self._frame = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def active(self) -> bool:
        return self._render is not None

    def show(self, render: Callable[[float], str]) -> None:
        """Show the line (or change what it says): `render(elapsed seconds)` gives its text.

        The elapsed time runs from the first `show` until `hide`."""
        with self.lock:
            if self._render is None:
                self._started = time.monotonic()
            self._render = render
            self._draw()
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._refresh, args=(self._stop,), name="kodev-status",
                                                daemon=True)
                self._thread.start()

    def hide(self) -> None:
        """Erase the line and stop redrawing it."""
        with self.lock:
            self._render = None
            self._erase()
            self._thread = None
            # Not joined: a caller may hold the lock the thread waits for. Set under the lock, the event
            # stops it before it draws again; a later `show` starts a thread with an event of its own.
            self._stop.set()

    @contextmanager
    def above(self) -> Iterator[None]:
        """Write something else to the terminal: the line is erased, then drawn again below it."""
        with self.lock:
            self._erase()
            try:
                yield
            finally:
                if self._render is not None:
                    self._draw()

    def _refresh(self, stop: threading.Event) -> None:
        while not stop.wait(REFRESH_SECONDS):
            with self.lock:
                if self._render is not None and not stop.is_set():
                    self._draw()

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.file.fileno()).columns or 80  # 0: a terminal that never said
        except (OSError, ValueError, AttributeError):
            return 80

    def _draw(self) -> None:
        assert self._render is not None
        self._frame = (self._frame + 1) % len(FRAMES)
        text = f"{FRAMES[self._frame]} {self._render(time.monotonic() - self._started)}"
        width = max(self._width() - 1, 10)  # never the last column: some terminals wrap there
        if len(text) > width:
            text = text[:width - 1] + "…"
        self.file.write(_ERASE + text)
        self.file.flush()
        self._shown = True

    def _erase(self) -> None:
        if self._shown:
            self.file.write(_ERASE)
            self.file.flush()
            self._shown = False
