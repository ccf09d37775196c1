"""Reading a `kodev … --json` process's events in a test: every line parsed and held to the versioned schema.

Integration tests assert on these events, never on kodev's human text (tests/test_ui.py and
tests/integration/test_progress.py cover that). `Events` reads what the process wrote so far; `wait` polls
until an event that matches has come (after a `mark`, to see only newer ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kodev.jsonui import check_event
from tests.integration.process import KodevProcess, wait_until

Event = dict[str, Any]
Match = Callable[[Event], bool]


def _any(event: Event) -> bool:
    return True


class Events:
    """The events of one `kodev --json` process, in order (stdout; stderr stays for Python's last words)."""

    def __init__(self, proc: KodevProcess) -> None:
        self.proc = proc
        self._seen = 0
        self._events: list[Event] = []

    def all(self, name: str | None = None, match: Match = _any, since: int = 0) -> list[Event]:
        """Every event so far (named `name` and matching `match`, after the mark `since`)."""
        lines = self.proc.out_lines()
        for line in lines[self._seen:]:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON line on stdout: {line!r}\n{self.proc.output()}") from None
            check_event(event)
            self._events.append(event)
        self._seen = len(lines)
        return [e for e in self._events[since:] if (name is None or e["event"] == name) and match(e)]

    def count(self, name: str, match: Match = _any, since: int = 0) -> int:
        return len(self.all(name, match, since))

    def mark(self) -> int:
        """A point in the stream: `wait(…, since=mark)` sees only the events after it."""
        return len(self.all())

    def wait(self, name: str, since: int = 0, match: Match = _any, timeout: float = 90, count: int = 1) -> Event:
        """The first of `count` events named `name` matching `match` after `since` (fails with kodev's output
        when they do not come in time, at once if kodev has exited: then they never will)."""
        found: list[Event] = []

        def failure() -> str:
            return (f"{count} x {name} event not seen ({len(found)} were); kodev exited={self.proc.process.poll()}"
                    f"\n{self.proc.output()}")

        def seen() -> bool:
            finished = self.proc.finished()  # first: what it wrote before exiting counts
            found[:] = self.all(name, match, since)
            if len(found) >= count:
                return True
            if finished:
                raise AssertionError(failure())
            return False

        wait_until(seen, timeout, failure)
        return found[0]

    def errors(self, match: Match = _any) -> list[Event]:
        return self.all("error", match)

    def fatal(self) -> list[Event]:
        """Errors that end kodev, or that say they were unexpected: a test that expects none asserts this."""
        return self.errors(lambda e: bool(e["fatal"]) or "unexpected" in e["message"])

    def rebuilt(self, command: str, since: int = 0) -> list[Event]:
        """The `command.result` events of `command` (its short name, as in cmd/NAME) that built a new image."""
        return self.all("command.result", lambda e: _short(e["command"]) == command and e["outcome"] == "rebuilt",
                        since)


def _short(command: str) -> str:
    return command.rstrip("/").rsplit("/", 1)[-1]
