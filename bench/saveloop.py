"""The watcher the benchmark runs for a contender that has none of its own (the shell loop, the ko loop, the ko
apply loop): saves batched exactly as kodev watch batches them (`saved_batches`), in a thread, one pass of
the contender's `run_once` per batch, so the watcher's delay is counted as kodev's is. Each pass (when
it began, its steps, or the error it raised) is queued for the measurement that caused it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.measure import BenchError, saved_batches

Pass = tuple[float, dict[str, float], BaseException | None]


class SaveLoop:
    def __init__(self, root: Path, run_once: Callable[[], dict[str, float]],
                 watched: Callable[[object, str], bool], name: str) -> None:
        self.root, self.run_once, self.watched, self.name = root, run_once, watched, name
        self.passes: queue.Queue[Pass] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name=self.name, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # let the watcher register its inotify watches

    def _watch(self) -> None:
        for _changes in saved_batches(self.root, self.watched, self._stop):
            started = time.monotonic()
            try:
                self.passes.put((started, self.run_once(), None))
            except BaseException as exc:
                self.passes.put((started, {}, exc))

    def measure(self, save: Callable[[], None], port: int, token: str, timeout: float = 120
                ) -> tuple[float, float, float, dict[str, float]]:
        """Make one save and wait until 127.0.0.1:`port` serves `token`: when the save was made, when it was
        served, when its pass began, and the pass's steps."""
        from bench.measure import wait_for_text

        while not self.passes.empty():  # the passes of earlier saves
            self.passes.get_nowait()
        started = time.monotonic()
        save()
        served = wait_for_text(port, token, timeout=timeout)
        triggered, steps = self._next_pass(timeout)
        return started, served, triggered, steps

    def _next_pass(self, timeout: float) -> tuple[float, dict[str, float]]:
        try:
            triggered, steps, error = self.passes.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"{self.name}: no pass within {timeout:.0f}s of the save") from None
        if error is not None:
            raise BenchError(f"{self.name} failed: {error}")
        return triggered, steps

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=8)
