"""Ctrl-C and SIGTERM: both end kodev the same way, and neither may cut its cleanup short."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def exit_quietly(_signum: int, _frame: FrameType | None) -> None:
    """For the first moments of a kodev process (its imports): Ctrl-C ends it with 130, without a traceback."""
    raise SystemExit(130)


def own_sigint() -> None:
    """Ctrl-C raises KeyboardInterrupt whatever kodev inherited: a SIGINT ignored by `nohup … &` is not kept."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, whatever handling kodev inherited."""
    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _raise_interrupt))}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while cleaning up, so a second Ctrl-C cannot orphan a container."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside are raised (KeyboardInterrupt) when it ends: a child process
    started inside is then always known to the code that must end it. Outside the main thread (where
    handlers cannot be set) nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if arrived:
        raise KeyboardInterrupt
