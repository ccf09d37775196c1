"""When the loop starts a round: the batches of file changes that waited are merged into one (no I/O).

The loop's inbox is a queue that the file watcher and the log threads put messages on. `Coalescer` takes
from it what the next round builds, by the rules of kodev/events.py (`settle_seconds`): a single save
builds at once; batches that piled up during a round wait for a short quiet; a storm waits a little more
so that it costs one more round, not one per pause. Its clock and inbox are passed in, so the rules are
tested by simulation (tests/test_loop_rules.py) as well as against the real loop.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from typing import Protocol

from kodev.events import SETTLE_MAX_SECONDS, STORM_GAP_SECONDS, FilesChanged, Message, settle_seconds

RawChanges = set[tuple[str, str]]
IDLE_SECONDS = 0.5  # how long an idle loop waits for a message before its idle work (health checks)


class Inbox(Protocol):
    """What the loop reads messages from: a `queue.Queue[Message]`, or a simulation of one."""

    def get(self, block: bool = True, timeout: float | None = None) -> Message: ...


class Coalescer:
    """Turns the inbox into rounds' worth of file changes; other messages go to `on_message` as they come."""

    def __init__(self, inbox: Inbox, on_message: Callable[[Message], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inbox = inbox
        self.on_message = on_message
        self.clock = clock
        self.last_batch = -STORM_GAP_SECONDS  # when the last batch of file changes arrived

    def next_round(self, round_started: float) -> RawChanges | None:
        """The changes the next round builds, once they have settled; None after IDLE_SECONDS with no
        message, or when only other messages came (the loop does its idle work, then asks again).

        `round_started` is when the last round began: a storm is held from there."""
        # Batches piled up while the loop was busy: a storm, perhaps. One alone is a save made during the
        # round's tail (the image load after a swap) and builds at once — unless it came right after the
        # batch before it (writes went on through a short round: the watcher sends a batch at least every
        # 0.2 s while they do). Other messages (a service's exit) say nothing about a storm.
        try:
            ready = [self.inbox.get(timeout=IDLE_SECONDS)]
        except queue.Empty:
            return None
        with contextlib.suppress(queue.Empty):
            while True:
                ready.append(self.inbox.get(timeout=0))
        files = [m for m in ready if isinstance(m, FilesChanged)]
        backlog = len(files) > 1 or (bool(files) and files[0].at - self.last_batch < STORM_GAP_SECONDS)
        pending: RawChanges = set()
        batches = 0
        deadline = self.clock() + SETTLE_MAX_SECONDS
        while True:
            for message in ready:
                if isinstance(message, FilesChanged):
                    pending |= message.raw
                    batches += 1
                    self.last_batch = message.at
                else:
                    self.on_message(message)
            try:
                wait = settle_seconds(backlog and bool(pending), batches, round_started, deadline, self.clock())
                ready = [self.inbox.get(timeout=wait)]
            except queue.Empty:
                break
        return pending or None
