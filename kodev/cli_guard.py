"""How a command's output starts and how it ends: its UI, errors as one paragraph, exit codes, a closed stdout.

`debug` is passed in by kodev/cli.py (from --debug or KODEV_DEBUG): with it, unexpected errors keep their
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from kodev.ui import UI

T = TypeVar("T")

BROKEN_PIPE_EXIT = 141  # what a shell reports for a tool that SIGPIPE ended (128 + 13), e.g. `yes | head -1`


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end was closed (poll reports an error on the write end)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _quiet_exit() -> NoReturn:
    """stdout's reader went away (`kodev resolve -f compose.yaml | head -c0`): exit quietly, as Unix tools do.

    stdout is pointed at /dev/null first, as Python's docs advise for SIGPIPE: whatever is flushed later,
    at interpreter exit too, goes nowhere instead of raising BrokenPipeError again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    raise typer.Exit(BROKEN_PIPE_EXIT)


def make_ui(command: str, json: bool, debug: bool) -> UI:
    """The output of this invocation: text for people, or JSON events (`--json`)."""
    if json:
        from kodev.jsonui import JsonUI

        try:
            return JsonUI(command, debug=debug)  # writes the `started` event
        except BrokenPipeError:
            if _stdout_reader_gone():
                _quiet_exit()
            raise
    from kodev.ui import UI

    return UI(debug=debug)


def guarded(action: Callable[[], T], debug: bool, ui: UI | None = None) -> T:
    """Run `action`; a KodevError becomes one paragraph on stderr and exit code 1, never a traceback."""
    from kodev.errors import KodevError
    from kodev.ui import UI

    ui = ui or UI(debug=debug)
    try:
        return action()
    except KodevError as exc:
        ui.error(exc, fatal=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        # Before a loop owned anything (the loops clean up and return on their own): click would say
        # "Aborted!" and exit 1; a Ctrl-C is not an error.
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
            _quiet_exit()  # kodev's output has no reader any more: nothing to report, nowhere to say it
        if debug:
            raise
        # A bug or a failure kodev did not foresee: one paragraph; --debug shows the traceback.
        ui.error(KodevError(f"unexpected {type(exc).__name__}: {exc}. Run again with --debug to see the "
                            "traceback, and please report it."), fatal=True)
        raise typer.Exit(1) from None


def finish(ui: UI, action: Callable[[], int | None], debug: bool) -> NoReturn:
    """Run `action` guarded and exit with its code; the UI closes first (the `exit` event, the status line)."""
    code = 1
    try:
        code = guarded(action, debug, ui) or 0
    except typer.Exit as exit_:
        code = exit_.exit_code
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        ui.close(code)
    raise typer.Exit(code)
