"""The loop's batching rules (kodev/coalesce.py), by simulation: any saves, any round durations.

A simulated clock and inbox stand in for time and the watcher's queue (the rules are about *when*, which real
time cannot be made to show on demand). A save sets the tree's version and arrives as one batch; a round
reads the version when it starts (a round delivers one snapshot) and takes the duration drawn for it.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from kodev.coalesce import IDLE_SECONDS, Coalescer
from kodev.events import SETTLE_MAX_SECONDS, STORM_HOLD_SECONDS, FilesChanged, Message, ServiceExited


@dataclass
class SimulatedInbox:
    """A queue whose `get` moves a simulated clock: messages arrive at their times, waiting takes time."""

    arrivals: list[tuple[float, Message]]  # (when, message), in time order
    now: float = 0.0
    taken: list[float] = field(default_factory=list)  # when each message was taken

    def clock(self) -> float:
        return self.now

    def get(self, block: bool = True, timeout: float | None = None) -> Message:
        assert timeout is not None and timeout >= 0
        if self.arrivals and self.arrivals[0][0] <= self.now + timeout:
            at, message = self.arrivals.pop(0)
            self.now = max(self.now, at)
            self.taken.append(self.now)
            return message
        self.now += timeout
        raise queue.Empty


def save(version: int, at: float) -> FilesChanged:
    return FilesChanged(frozenset({("modified", f"/m/file{version % 7}.go")}), at)


@dataclass
class Outcome:
    rounds: list[tuple[float, int]]  # (when the round started, the version it read)
    final: int
    last_save: float
    others: int  # non-file messages handed on


def simulate(gaps: Sequence[float], durations: Sequence[float]) -> Outcome:
    """Saves `gaps` apart (version i at sum(gaps[:i+1])); round k takes durations[k % len] seconds."""
    times, at = [], 0.0
    for gap in gaps:
        at += gap
        times.append(at)
    arrivals: list[tuple[float, Message]] = [(t, save(i + 1, t)) for i, t in enumerate(times)]
    arrivals.insert(len(arrivals) // 2, (times[len(times) // 2], ServiceExited("s", "c", 0, ())))
    inbox = SimulatedInbox(sorted(arrivals, key=lambda a: a[0]))
    others: list[Message] = []
    coalescer = Coalescer(inbox, others.append, inbox.clock)
    rounds: list[tuple[float, int]] = []
    round_started = 0.0
    quiet_until = times[-1] + 60  # long after the last save: the loop is idle again
    while inbox.now < quiet_until:
        changes = coalescer.next_round(round_started)
        if changes is None:
            continue
        round_started = inbox.now
        version = sum(1 for t in times if t <= inbox.now)  # what the files say as the round reads them
        rounds.append((round_started, version))
        inbox.now += durations[(len(rounds) - 1) % len(durations)]
    return Outcome(rounds, len(times), times[-1], len(others))


gaps = st.lists(st.floats(min_value=0.0, max_value=1.5, allow_nan=False), min_size=1, max_size=60)
durations = st.lists(st.floats(min_value=0.01, max_value=3.0, allow_nan=False), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(gaps, durations)
def test_the_last_saved_state_is_always_built(gap_list: list[float], duration_list: list[float]) -> None:
    outcome = simulate(gap_list, duration_list)
    assert outcome.rounds, "saves were never built"
    assert outcome.rounds[-1][1] == outcome.final, outcome.rounds
    assert outcome.others == 1  # other messages are handed on, never taken for changes


@settings(max_examples=150, deadline=None)
@given(gaps, durations)
def test_no_round_builds_nothing_new_and_none_waits_past_the_settle_limit(
        gap_list: list[float], duration_list: list[float]) -> None:
    outcome = simulate(gap_list, duration_list)
    versions = [version for _, version in outcome.rounds]
    assert versions == sorted(set(versions)), f"a round without a new save: {outcome.rounds}"
    # The last save is built at most one settle limit (plus the round then running) after it was made.
    longest_round = max(duration_list)
    assert outcome.rounds[-1][0] <= outcome.last_save + longest_round + SETTLE_MAX_SECONDS + IDLE_SECONDS


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=15), st.floats(min_value=0.02, max_value=1.0),
       st.floats(min_value=0.05, max_value=0.2))
def test_a_storm_costs_at_most_two_rounds(batches: int, first_round: float, spacing: float) -> None:
    """A checkout or a formatter: writes go on for a while, so the watcher sends a batch every `spacing`
    seconds (at most 0.2 s apart, kodev/events.py); the first batch starts a round at once."""
    outcome = simulate([0.0] + [spacing] * (batches - 1), [first_round, 0.5])
    assert len(outcome.rounds) <= 2, outcome.rounds
    assert outcome.rounds[-1][1] == batches


def test_a_single_save_builds_at_once() -> None:
    outcome = simulate([2.0], [0.5])
    assert outcome.rounds == [(2.0, 1)]


def test_a_save_during_a_rounds_tail_builds_as_soon_as_the_round_ends() -> None:
    """One save 0.4 s into a 0.6 s round (the image load after a swap): no settle wait after it."""
    outcome = simulate([1.0, 0.4], [0.6])
    assert outcome.rounds == [(1.0, 1), (1.6, 2)]


def test_a_storm_is_held_from_the_start_of_the_round_before() -> None:
    outcome = simulate([1.0] + [0.05] * 10, [0.1, 0.1])
    start, _ = outcome.rounds[1]
    assert start >= 1.0 + STORM_HOLD_SECONDS - 1e-9, outcome.rounds
