"""When the loop starts a round, and when a round's compile gives way to newer saves (no I/O).

The loop's inbox is a queue that the file watcher and the log threads put messages on. The watcher already
waits for a quiet `debounce_ms` before it sends a batch (and sends one at least every 0.2 s while writes go
on), so `Coalescer` starts a round at once with every batch waiting. A burst of saves (an editor's
auto-save, a `git checkout`, a formatter) is not waited out with a fixed hold: a batch that comes while a
round compiles supersedes that compile (kodev/gobuild.py stops it, Go's build cache keeps what it
compiled), and the next round builds with it. The last save of a burst is served one build after the
burst ends. So that endless writes (a log file in a watched directory) cannot starve the loop, saves
supersede compiles for at most SUPERSEDE_MAX_SECONDS in a row; then a build finishes and serves.

Its clock and inbox are passed in, so the rules are tested by simulation (tests/test_loop_rules.py) as
well as against the real loop.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from typing import Protocol

from kodev.events import FilesChanged, Message

RawChanges = set[tuple[str, str]]
IDLE_SECONDS = 0.5  # how long an idle loop waits for a message before its idle work (health checks)
SUPERSEDE_MAX_SECONDS = 5.0  # newer saves give compiles up for at most this long in a row


class Messages(Protocol):
    """What the loop reads messages from: an `Inbox`, or a simulation of one."""

    @property
    def files_waiting(self) -> int: ...  # batches of file changes put and not yet taken

    def get(self, block: bool = True, timeout: float | None = None) -> Message: ...


class Inbox(queue.Queue[Message]):
    """The loop's queue. It counts the batches of file changes waiting in it, under the queue's own lock, so
    that a compile running in the loop's thread can learn from another thread that newer saves came."""

    files_waiting: int

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.files_waiting = 0

    def _put(self, item: Message) -> None:
        super()._put(item)
        if isinstance(item, FilesChanged):
            self.files_waiting += 1

    def _get(self) -> Message:
        item = super()._get()
        if isinstance(item, FilesChanged):
            self.files_waiting -= 1
        return item


class Coalescer:
    """Turns the inbox into rounds' worth of file changes; other messages go to `on_message` as they come."""

    def __init__(self, inbox: Messages, on_message: Callable[[Message], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inbox = inbox
        self.on_message = on_message
        self.clock = clock
        self.streak_started: float | None = None  # when the round that the current run of supersedes began
        self._gave_way = False  # the last round's compile was superseded

    def next_round(self) -> RawChanges | None:
        """The changes the next round builds: every batch waiting now. None after IDLE_SECONDS with no
        message, or when only other messages came (the loop does its idle work, then asks again)."""
        try:
            ready = [self.inbox.get(timeout=IDLE_SECONDS)]
        except queue.Empty:
            return None
        with contextlib.suppress(queue.Empty):
            while True:
                ready.append(self.inbox.get(timeout=0))
        pending: RawChanges = set()
        for message in ready:
            if isinstance(message, FilesChanged):
                pending |= message.raw
            else:
                self.on_message(message)
        if not pending:
            return None
        if not self._gave_way or self.streak_started is None:
            self.streak_started = self.clock()
        self._gave_way = False
        return pending

    def supersede(self) -> bool:
        """Asked while a round compiles (from the compile's thread): whether it should give way to the newer
        saves waiting. True means it does: the next round continues the run of superseded rounds."""
        if self.inbox.files_waiting <= 0 or self.streak_started is None:
            return False
        if self.clock() - self.streak_started >= SUPERSEDE_MAX_SECONDS:
            return False  # saves have superseded long enough: this build finishes and serves
        self._gave_way = True
        return True
