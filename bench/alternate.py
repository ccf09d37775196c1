"""Contenders side by side: entries that start, alternate (each round every contender once, in a shuffled
order) and stop, and the tables they make.

An `Entry` is one contender of one scenario: how to make its runner (anything with `start()`,
`measure(token)`, `stop()`, `edit(token)`, `port` and `module`, as bench/contenders.py's and
bench/rivals.py's are), or the exact reason it cannot run here. A contender that fails to start or fails a
round keeps its exact error and takes no further turns; the others go on, and the report shows that
error where its numbers would be — nothing is dropped in silence. Values are kept by round, so ratios
pair the same rounds even when one contender stopped early.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.contenders import PAUSE, median_of, rounds
from bench.context import Context
from bench.measure import Series, median
from bench.results import Table, millis, seconds


class Runner(Protocol):
    port: int
    module: Path

    def start(self) -> float: ...

    def measure(self, token: str) -> tuple[float, dict[str, float]]: ...

    def edit(self, token: str) -> None: ...

    def stop(self) -> None: ...


Measure = Callable[[Runner, str], tuple[float, dict[str, float]]]


@dataclass
class Entry:
    name: str  # as the tables say it: "kodev (swap)", "ko loop", …
    kind: str  # a short word for tokens and logs: "kodev", "ko", "skaffold", "air", "floor", …
    make: Callable[[], Runner] | None  # None: it cannot run here (`error` says why)
    flags: str = ""  # how it builds, for the setup paragraph
    error: str = ""
    runner: Runner | None = None
    first: float | None = None  # start() -> seconds until it served
    values: dict[int, float] = field(default_factory=dict)  # counted round -> seconds
    parts: dict[int, dict[str, float]] = field(default_factory=dict)  # counted round -> its breakdown

    @property
    def live(self) -> bool:
        return self.runner is not None and not self.error

    @property
    def series(self) -> Series:
        return Series(self.name, [self.values[key] for key in sorted(self.values)])

    def fail(self, what: str, exc: BaseException) -> None:
        self.error = f"{what}: {describe(exc)}"
        self.stop()

    def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            try:
                runner.stop()
            except Exception as exc:  # its own clean-up failed: say so, keep the numbers
                self.error = self.error or f"stop failed: {describe(exc)}"


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if not isinstance(exc, (OSError, ValueError, KeyError, AssertionError)) else \
        f"{type(exc).__name__}: {text}"


def default_measure(runner: Runner, token: str) -> tuple[float, dict[str, float]]:
    return runner.measure(token)


def start_all(context: Context, entries: list[Entry], what: str) -> None:
    for entry in entries:
        if entry.make is None or entry.error:
            continue
        context.log(f"{what}: starting {entry.name}")
        try:
            entry.runner = entry.make()
            entry.first = entry.runner.start()
        except Exception as exc:
            entry.fail("did not start", exc)
            context.log(f"{what}: {entry.name} did not start: {entry.error.splitlines()[0][:300]}")


def stop_all(entries: list[Entry]) -> None:
    for entry in entries:
        entry.stop()


def alternate(context: Context, entries: list[Entry], what: str, measure: Measure = default_measure,
              warmup: int | None = None, reps: int | None = None, pause: float = PAUSE,
              tokens: str = "", offset: int = 0) -> None:
    """Rounds of one turn each, in order; a turn that raises ends that contender's turns (its error kept).
    `offset` numbers the rounds after those of an earlier call (values are kept by round)."""
    for index, counted in ((offset + i, c) for i, c in rounds(context, warmup, reps)):
        said = []
        for entry in turn_order(entries, f"{context.uid}-{what}-{index}"):
            if not entry.live:
                continue
            assert entry.runner is not None
            token = f"{entry.kind}-{context.uid}-{tokens}{index}"
            try:
                with others_paused(entries, entry):
                    settle()
                    value, parts = measure(entry.runner, token)
            except Exception as exc:
                entry.fail(f"round {index + 1}", exc)
                said.append(f"{entry.kind} FAILED")
                continue
            said.append(f"{entry.kind} {value:.3f}s")
            if counted:
                entry.values[index] = value
                entry.parts[index] = parts
            time.sleep(pause)
        context.log(f"{what} round {index + 1}{'' if counted else ' (warm-up)'}: {', '.join(said) or 'nobody ran'}")


def turn_order(entries: list[Entry], seed: str) -> list[Entry]:
    """This round's order of turns: shuffled, seeded by the run and the round (reproducible from the log).
    In a fixed order each contender always follows the same one, and what that one leaves running (dockerd
    removing a container, a load's tail) always falls on it; settle() waits most of that out, and the
    shuffle spreads what is left over every contender alike."""
    order = list(entries)
    random.Random(seed).shuffle(order)
    return order


def watcher_pid(entry: Entry) -> int | None:
    """The process id of a contender's own watcher (kodev, skaffold, air), None for loops run by the benchmark."""
    process = getattr(entry.runner, "process", None)
    popen = getattr(process, "popen", None)
    return popen.pid if popen is not None and popen.poll() is None else None


@contextlib.contextmanager
def others_paused(entries: list[Entry], turn: Entry) -> Iterator[None]:
    """While one contender takes its turn, every other contender's watcher process is stopped (SIGSTOP) and
    continued afterwards: an idle watcher's polling (Skaffold polls its files every 25 ms here) would
    otherwise take the 2 cores from whoever is being measured, which a user running one tool never sees.
    Only the watcher is stopped, not the apps it started: no requests reach them meanwhile."""
    paused = []
    try:
        for other in entries:
            pid = watcher_pid(other) if other is not turn and other.live else None
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    paused.append(pid)
        _wait_stopped(paused)
        yield
    finally:
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# A turn starts on a quiet machine: what the previous turn left running (dockerd removing a container,
# containerd's shim going, a load's tail) would otherwise fall on whoever comes next. With a fixed order of
# turns that is always the same contender: kodev came after the shell loop's `docker rm -f` + `docker run`,
# and its `go build` measured ~20 ms slower than the same command alone, which came after kodev.
SETTLE_IDLE = 0.9  # quiet: this share of the CPU time idle ...
SETTLE_WINDOW = 0.05  # ... over this many seconds
SETTLE_LONGEST = 3.0  # a machine never that quiet is measured anyway, after this long


def settle() -> float:
    """Wait until the machine is quiet (or SETTLE_LONGEST has passed); the seconds waited."""
    started = time.monotonic()
    before = _cpu_times()
    while time.monotonic() - started < SETTLE_LONGEST:
        time.sleep(SETTLE_WINDOW)
        after = _cpu_times()
        total = sum(after) - sum(before)
        idle = (after[3] + after[4]) - (before[3] + before[4])  # idle + iowait
        if total > 0 and idle / total >= SETTLE_IDLE:
            break
        before = after
    return time.monotonic() - started


def _cpu_times() -> list[int]:
    """The machine's CPU times (/proc/stat's first line: user nice system idle iowait irq softirq steal)."""
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:9]]


def _wait_stopped(pids: list[int], timeout: float = 2.0) -> None:
    """SIGSTOP is delivered asynchronously: the turn starts once each process is in state T (or gone)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                break
            if state in ("T", "t", "Z", "X"):
                break
            time.sleep(0.001)


# --- derived numbers ------------------------------------------------------------------------------------

def paired(a: Entry, b: Entry, how: Callable[[float, float], float]) -> list[float]:
    """`how(a, b)` for every counted round both have."""
    return [how(a.values[key], b.values[key]) for key in sorted(a.values) if key in b.values]


def ratio(a: Entry, b: Entry) -> float:
    """The median of the per-round ratios a / b (NaN without a pair)."""
    return median([r for r in paired(a, b, lambda x, y: x / y if y > 0 else float("nan")) if r == r])


def difference(a: Entry, b: Entry) -> float:
    return median(paired(a, b, lambda x, y: x - y))


def ratio_text(value: float) -> str:
    return "—" if value != value else f"{value:.2f}x"


def part(entry: Entry, key: str) -> float:
    return median_of(list(entry.parts.values()), key)


# --- tables and notes -----------------------------------------------------------------------------------

def status(entry: Entry) -> str:
    if entry.make is None:
        return "not run here (below)"
    if entry.error:
        return "failed (below)" if entry.values else "did not run (below)"
    return ""


def results_table(entries: list[Entry], label: str = "contender", first: bool = False) -> Table:
    """Median, min, max, n per contender; `first` adds its start -> serving; a failure says so in its row."""
    headers = [label, "median", "min", "max", "n"] + (["start → serving"] if first else []) + ["status"]
    rows = []
    for entry in entries:
        series = entry.series
        row = [entry.name, seconds(series.median), seconds(series.min), seconds(series.max), str(len(series.values))]
        if first:
            row.append(seconds(entry.first) if entry.first is not None else "—")
        rows.append([*row, status(entry)])
    return Table(headers, rows)


def breakdown_table(entries: list[Entry], what: str = "edit → serving") -> Table:
    """Where each contender spends its time: the median of each step of its breakdown, in its own order."""
    rows = []
    for entry in entries:
        steps: list[str] = []
        for parts in entry.parts.values():
            steps += [step for step in parts if step not in steps]
        shown = [f"{step.removesuffix('_mb')} {_amount(step, part(entry, step))}" for step in steps]
        rows.append([entry.name, seconds(entry.series.median), " · ".join(shown) or "(no breakdown)"])
    return Table(["where the time goes (medians)", what, "steps, in order"], rows)


def _amount(step: str, value: float) -> str:
    return f"{value:.1f} MB" if step.endswith("_mb") else millis(value)


def problems(entries: list[Entry]) -> list[str]:
    """One note per contender that could not run or stopped, with its exact error."""
    notes = []
    for entry in entries:
        if entry.error:
            verb = "could not run here" if entry.make is None else "failed"
            notes.append(f"**{entry.name} {verb}:** {quote(entry.error)}")
    return notes


def flags_text(entries: list[Entry]) -> str:
    return " ".join(f"*{entry.name}*: {entry.flags}" for entry in entries if entry.flags)


_URL = re.compile(r"\b(https?://)([^/\s'\"]+)")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def redact(text: str) -> str:
    """The host of every URL that is not this machine's, as <remote host>: the report names no public host."""
    return _URL.sub(lambda m: m.group(0) if m.group(2).split(":")[0] in _LOOPBACK or m.group(2).startswith("[::1]")
                    else f"{m.group(1)}<remote host>", text)


def quote(text: str, limit: int = 1500) -> str:
    """An error as one line of inline code, verbatim but for newlines (` ⏎ `), backticks and remote hosts."""
    flat = " ⏎ ".join(line.rstrip() for line in redact(text).strip().splitlines() if line.strip())
    flat = flat.replace("`", "'")
    return f"`{flat[:limit]}{' …' if len(flat) > limit else ''}`"
