"""Ctrl-C and SIGTERM: both end kodev the same way, and neither may cut its cleanup short."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

# Set by SIGINT and SIGTERM inside `interrupts_as_keyboard`. The KeyboardInterrupt a handler raises is lost
# when it lands in a weakref callback or a __del__ (Python prints "Exception ignored" and goes on): the loops
# call `raise_if_stop_asked` between their waits, so such a signal still ends kodev.
_stop_asked = threading.Event()


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    _stop_asked.set()
    raise KeyboardInterrupt


def _quiet_lost_interrupts(previous: Callable[[Any], object]) -> Callable[[Any], object]:
    """An unraisable-exception hook that says nothing of a KeyboardInterrupt (kodev stops on it all the same,
    through `raise_if_stop_asked`) and passes anything else to `previous`."""
    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
    return hook


def raise_if_stop_asked() -> None:
    """KeyboardInterrupt if a SIGINT or SIGTERM came (its own KeyboardInterrupt may have been swallowed)."""
    if _stop_asked.is_set():
        raise KeyboardInterrupt


def exit_quietly(_signum: int, _frame: FrameType | None) -> None:
    """For the first moments of a kodev process (its imports): Ctrl-C ends it with 130, without a traceback."""
    raise SystemExit(130)


def own_sigint() -> None:
    """Ctrl-C raises KeyboardInterrupt whatever kodev inherited: a SIGINT ignored by `nohup … &` is not kept."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def _handling(handlers: dict[int, signal.Handlers | Callable[[int, FrameType | None], object]]) -> Iterator[None]:
    """Install `handlers` for the block; put back whatever was there before, however the block ends."""
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, whatever handling kodev inherited, and
    are remembered for `raise_if_stop_asked`."""
    _stop_asked.clear()
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_lost_interrupts(previous_hook)
    try:
        with _handling({signal.SIGINT: _raise_interrupt, signal.SIGTERM: _raise_interrupt}):
            yield
    finally:
        sys.unraisablehook = previous_hook


def shielded() -> AbstractContextManager[None]:
    """Ignore SIGINT and SIGTERM while cleaning up, so a second Ctrl-C cannot orphan a container."""
    return _handling({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN})


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside are raised (KeyboardInterrupt) when it ends: a child process
    started inside is then always known to the code that must end it. Outside the main thread (where
    handlers cannot be set) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        arrived.append(signum)

    with _handling({signal.SIGINT: remember, signal.SIGTERM: remember}):
        yield
    if arrived:
        raise KeyboardInterrupt
