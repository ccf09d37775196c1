"""Saved files in batches, each ended by a quiet period: what kodev watch (kodev/events.py) and the benchmark's
own loops (bench/saveloop.py) build from, so that every watcher in a comparison waits alike.

watchfiles ends a batch on the first of its wake-ups (every `step` ms) that finds no new change: `step` to
2 x `step` after the last one, 1.5 x on average. So watchfiles runs with a short step, and the batches it
gives are merged here until `debounce_ms` has passed without another: the quiet that ends a batch is then
`debounce_ms` to `debounce_ms` + DETECT_MS, not up to twice as long. A batch is at most MAX_BATCH_MS old when
it goes (or 4 x `debounce_ms`, when longer), so that continuous writes still send one five times a second.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Union

Raw = frozenset[tuple[str, str]]  # (change, path): change is added, modified or deleted
NAMES = {1: "added", 2: "modified", 3: "deleted"}
MAX_BATCH_MS = 200  # watchfiles calls this cap `debounce`
IDLE_WAKE_MS = 250  # an empty batch this often when nothing happens (the first says the watches are set)
DETECT_MS = 10  # watchfiles' step: a change is seen 10-20 ms after it (each wake-up costs ~0.01 % of a core)
_Item = Union[Raw, BaseException, None]  # noqa: UP007 - a runtime alias on Python 3.10


def batches(roots: Sequence[Path], wanted: Callable[[Any, str], bool], quiet_ms: int, stop: threading.Event,
            poll: bool = False, poll_interval_ms: int = 300) -> Iterator[Raw]:
    """Batches of changes under `roots` that `wanted` keeps, each once `quiet_ms` passed without another
    change (empty ones when idle); ends when `stop` is set. Raises what watchfiles raised (a root gone)."""
    quiet_ms = max(quiet_ms, 1)
    step = min(quiet_ms, DETECT_MS)
    cap_ms = max(MAX_BATCH_MS, 4 * quiet_ms)  # a long quiet period (a slow editor's) still ends batches
    found: queue.SimpleQueue[_Item] = queue.SimpleQueue()

    def watch() -> None:
        import watchfiles

        try:
            for changes in watchfiles.watch(
                *roots, watch_filter=wanted, debounce=cap_ms // 2, step=step, stop_event=stop,
                rust_timeout=IDLE_WAKE_MS, yield_on_timeout=True, force_polling=True if poll else None,
                poll_delay_ms=poll_interval_ms, raise_interrupt=False,
            ):
                found.put(frozenset((NAMES[int(c)], p) for c, p in changes))
        except Exception as exc:
            found.put(exc)
        finally:
            found.put(None)

    threading.Thread(target=watch, name="watchfiles", daemon=True).start()
    extend = (quiet_ms - step) / 1000  # watchfiles waited `step` of the quiet already
    item = found.get()
    while item is not None:
        if isinstance(item, BaseException):
            raise item
        batch = set(item)
        ended = _merge(found, batch, extend, cap_ms / 2000) if batch and extend > 0 else False
        yield frozenset(batch)
        item = found.get() if ended is False else ended


def _merge(found: queue.SimpleQueue[_Item], batch: set[tuple[str, str]], extend: float, cap: float
           ) -> BaseException | Literal[False] | None:
    """Into `batch`, what comes until `extend` seconds pass without a change (or `cap` seconds); what ended
    the watcher meanwhile (None, an error) is returned, to come after the batch; else False."""
    started = time.monotonic()
    deadline = started + extend
    # watchfiles gave `batch` at most half the cap after its first change: the other half is here.
    while (left := min(deadline, started + cap) - time.monotonic()) > 0:
        try:
            item = found.get(timeout=left)
        except queue.Empty:
            return False
        if not isinstance(item, frozenset):
            return item
        if item:  # (an empty one is an idle wake-up: no change)
            batch |= item
            deadline = time.monotonic() + extend
    return False
