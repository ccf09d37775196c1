"""kodev/filebatches.py against the real watchfiles (inotify) on a temporary directory: a batch ends after the
quiet period, never sooner; saves closer together than it are one batch; continuous saves still send batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kodev.filebatches import MAX_BATCH_MS, Raw, batches


@contextmanager
def watching(root: Path, quiet_ms: int) -> Iterator[list[tuple[float, Raw]]]:
    """Batches (when each came, what it held) while the body runs; the watches are in place at its start."""
    stop, ready = threading.Event(), threading.Event()
    got: list[tuple[float, Raw]] = []

    def consume() -> None:
        for batch in batches([root], lambda _c, _p: True, quiet_ms, stop):
            ready.set()
            if batch:
                got.append((time.monotonic(), batch))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert ready.wait(10), "the first (empty) batch says the watches are in place"
    try:
        yield got
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "stop ends the batches"


def wait_for(got: list[tuple[float, Raw]], count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(got) >= count, got


def paths(batch: Raw) -> set[str]:
    return {Path(p).name for _, p in batch}


def test_a_batch_ends_no_sooner_than_the_quiet_period_after_the_last_save(tmp_path: Path) -> None:
    with watching(tmp_path, 120) as got:
        for name in ("a.go", "b.go", "c.go"):  # 30 ms apart: well inside the quiet period
            (tmp_path / name).write_text(name)
            last = time.monotonic()
            time.sleep(0.03)
        wait_for(got, 1)
        time.sleep(0.3)
    assert len(got) == 1, got
    came, batch = got[0]
    assert paths(batch) == {"a.go", "b.go", "c.go"}
    assert came - last >= 0.120, "the quiet period is waited out in full"


def test_saves_further_apart_than_the_quiet_period_are_separate_batches(tmp_path: Path) -> None:
    with watching(tmp_path, 25) as got:
        (tmp_path / "a.go").write_text("a")
        wait_for(got, 1)
        (tmp_path / "b.go").write_text("b")
        wait_for(got, 2)
    assert [paths(batch) for _, batch in got] == [{"a.go"}, {"b.go"}]
    assert {change for _, batch in got for change, _ in batch} == {"added"}


def test_continuous_saves_still_send_a_batch_at_least_every_max_batch(tmp_path: Path) -> None:
    """A file written every 10 ms for 1 s never leaves a quiet period: batches still flow."""
    with watching(tmp_path, 25) as got:
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < 1.0:
            (tmp_path / f"f{count}.go").write_text(str(count))
            count += 1
            time.sleep(0.01)
        wait_for(got, 1)
        time.sleep(0.3)
    assert len(got) >= 1000 // (MAX_BATCH_MS + 50), got
    assert set().union(*(paths(batch) for _, batch in got)) == {f"f{n}.go" for n in range(count)}, "none lost"


def test_a_root_that_is_gone_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        next(batches([tmp_path / "missing"], lambda _c, _p: True, 25, threading.Event()))
