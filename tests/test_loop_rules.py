"""The loop's rules for bursts of saves (kodev/coalesce.py), by simulation: any saves, any round durations.

A simulated clock and inbox stand in for time and the watcher's queue (the rules are about *when*, which real
time cannot be made to show on demand). A save sets the tree's version and arrives as one batch. A round
reads the version when it starts (a round delivers one snapshot), compiles for the time drawn for it —
during which a batch that arrives asks `Coalescer.supersede`, as kodev/gobuild.py does while `go build`
runs, and a yes gives the round up — then delivers for its tail (image, load, swap), which no save stops.
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kodev.coalesce import IDLE_SECONDS, SUPERSEDE_MAX_SECONDS, Coalescer
from kodev.events import FilesChanged, Message, ServiceExited


@dataclass
class SimulatedInbox:
    """A queue whose `get` moves a simulated clock: messages arrive at their times, waiting takes time."""

    arrivals: list[tuple[float, Message]]  # (when, message), in time order
    now: float = 0.0
    taken: list[float] = field(default_factory=list)  # when each message was taken

    def clock(self) -> float:
        return self.now

    @property
    def files_waiting(self) -> int:
        return sum(1 for at, message in self.arrivals if at <= self.now and isinstance(message, FilesChanged))

    def get(self, block: bool = True, timeout: float | None = None) -> Message:
        assert timeout is not None and timeout >= 0
        if self.arrivals and self.arrivals[0][0] <= self.now + timeout:
            at, message = self.arrivals.pop(0)
            self.now = max(self.now, at)
            self.taken.append(self.now)
            return message
        self.now += timeout
        raise queue.Empty

    def next_batch_before(self, end: float) -> float | None:
        """When the next batch of file changes arrives, if before `end`."""
        return next((at for at, m in self.arrivals if isinstance(m, FilesChanged) and at < end), None)


def save(version: int) -> FilesChanged:
    return FilesChanged(frozenset({("modified", f"/m/file{version % 7}.go")}))


@dataclass
class Outcome:
    delivered: list[tuple[float, float, int]]  # (when the round started, when it ended, the version it read)
    superseded: list[tuple[float, float]]  # (when a round started, when newer saves gave it up)
    final: int
    last_save: float
    others: int  # non-file messages handed on


def simulate(gaps: Sequence[float], compiles: Sequence[float], tails: Sequence[float] = (0.1,)) -> Outcome:
    """Saves `gaps` apart (version i at sum(gaps[:i+1])); round k compiles for compiles[k % len] seconds and
    delivers for tails[k % len]."""
    times, at = [], 0.0
    for gap in gaps:
        at += gap
        times.append(at)
    arrivals: list[tuple[float, Message]] = [(t, save(i + 1)) for i, t in enumerate(times)]
    arrivals.insert(len(arrivals) // 2, (times[len(times) // 2], ServiceExited("s", "c", 0, ())))
    inbox = SimulatedInbox(sorted(arrivals, key=lambda a: a[0]))
    others: list[Message] = []
    coalescer = Coalescer(inbox, others.append, inbox.clock)
    outcome = Outcome([], [], len(times), times[-1], 0)
    quiet_until = times[-1] + 60  # long after the last save: the loop is idle again
    rounds = 0
    while inbox.now < quiet_until:
        if coalescer.next_round() is None:
            continue
        started = inbox.now
        version = sum(1 for t in times if t <= started)  # what the files say as the round reads them
        compiled_by = started + compiles[rounds % len(compiles)]
        tail = tails[rounds % len(tails)]
        rounds += 1
        given_up = None
        while (batch := inbox.next_batch_before(compiled_by)) is not None:
            inbox.now = max(inbox.now, batch)
            if coalescer.supersede():
                given_up = inbox.now
                break
            inbox.now = compiled_by  # it finishes: later batches in its compile are taken after it
            break
        if given_up is not None:
            outcome.superseded.append((started, given_up))
            continue
        inbox.now = compiled_by + tail
        outcome.delivered.append((started, inbox.now, version))
    outcome.others = len(others)
    return outcome


gaps = st.lists(st.floats(min_value=0.0, max_value=1.5, allow_nan=False), min_size=1, max_size=60)
durations = st.lists(st.floats(min_value=0.01, max_value=3.0, allow_nan=False), min_size=1, max_size=8)
tails = st.lists(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(gaps, durations, tails)
def test_the_last_saved_state_is_always_delivered(gap_list: list[float], compile_list: list[float],
                                                 tail_list: list[float]) -> None:
    outcome = simulate(gap_list, compile_list, tail_list)
    assert outcome.delivered, "saves were never delivered"
    assert outcome.delivered[-1][2] == outcome.final, outcome.delivered
    assert outcome.others == 1  # other messages are handed on, never taken for changes


@settings(max_examples=200, deadline=None)
@given(gaps, durations, tails)
def test_no_round_delivers_nothing_new_and_the_last_save_is_served_within_two_builds(
        gap_list: list[float], compile_list: list[float], tail_list: list[float]) -> None:
    outcome = simulate(gap_list, compile_list, tail_list)
    versions = [version for _, _, version in outcome.delivered]
    assert versions == sorted(set(versions)), f"a round without a new save: {outcome.delivered}"
    # Saved during a tail it waits for that tail; saved when the supersede limit lets a build finish, for
    # that build: never more than two builds after the save.
    longest = max(compile_list) + max(tail_list)
    assert outcome.delivered[-1][1] <= outcome.last_save + 2 * longest + 1e-9, outcome


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=2, max_value=30), st.floats(min_value=0.25, max_value=1.0),
       st.floats(min_value=0.03, max_value=0.2), st.floats(min_value=0.0, max_value=0.3))
def test_a_burst_is_served_one_build_after_it_ends(batches: int, compile_seconds: float, spacing: float,
                                                   tail: float) -> None:
    """An editor's auto-save, a checkout, a formatter: the watcher sends a batch every `spacing` seconds (at
    most 0.2 s apart while writes go on, kodev/events.py) for less than the supersede limit; each compile
    takes longer than that. One round delivers, with the last save, one build after the burst."""
    assume((batches - 1) * spacing < SUPERSEDE_MAX_SECONDS)
    outcome = simulate([0.0] + [spacing] * (batches - 1), [compile_seconds], [tail])
    assert len(outcome.delivered) == 1, outcome
    assert len(outcome.superseded) == batches - 1, outcome
    assert outcome.delivered[0][2] == batches
    assert outcome.delivered[0][1] <= outcome.last_save + compile_seconds + tail + 1e-9, outcome


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0.05, max_value=0.2), st.floats(min_value=0.25, max_value=1.0))
def test_endless_writes_still_deliver_at_least_every_supersede_limit(spacing: float, compile_seconds: float) -> None:
    """A log file written in a watched directory for 20 s: builds are not given up forever."""
    outcome = simulate([spacing] * int(20 / spacing), [compile_seconds], [0.1])
    ends = [0.0, *(end for _, end, _ in outcome.delivered)]
    longest_gap = max(b - a for a, b in itertools.pairwise(ends))
    assert longest_gap <= SUPERSEDE_MAX_SECONDS + 2 * (compile_seconds + 0.1) + spacing, outcome.delivered


def test_a_single_save_builds_at_once() -> None:
    outcome = simulate([2.0], [0.4], [0.1])
    assert [(start, version) for start, _, version in outcome.delivered] == [(2.0, 1)]
    assert outcome.superseded == []


def test_a_save_during_a_rounds_tail_builds_as_soon_as_the_round_ends() -> None:
    """One save 0.5 s into a 0.4 s compile + 0.2 s tail (the image load after a swap): no wait after it."""
    outcome = simulate([1.0, 0.5], [0.4], [0.2])
    assert [(round(start, 9), version) for start, _, version in outcome.delivered] == [(1.0, 1), (1.6, 2)]


def test_a_save_during_a_compile_gives_it_up_and_builds_at_once() -> None:
    outcome = simulate([1.0, 0.2], [0.4], [0.1])
    assert [(round(a, 9), round(b, 9)) for a, b in outcome.superseded] == [(1.0, 1.2)]
    assert [(round(start, 9), version) for start, _, version in outcome.delivered] == [(1.2, 2)]


def test_an_idle_loop_asks_again_after_the_idle_timeout() -> None:
    outcome = simulate([3.0], [0.1])
    assert outcome.delivered[0][0] == 3.0 and IDLE_SECONDS < 3.0
