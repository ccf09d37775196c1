"""Reading a `kodev … --json` process's events in a test: every line parsed and held to the versioned schema.

Integration tests assert on these events, never on kodev's human text (tests/test_ui.py and
tests/integration/test_progress.py cover that). `Events` reads what the process wrote so far; `wait` polls
until an event that matches has come (after a `mark`, to see only newer ones).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
        self._events += parse(lines[self._seen:], self.proc.output)
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
        return self.all("command.result", _rebuilt(command), since)

    def wait_rebuilt(self, command: str, count: int = 1, since: int = 0, timeout: float = 90) -> Event:
        """Wait for the `count`th `rebuilt` result of `command` after `since` (the first of them)."""
        return self.wait("command.result", since, _rebuilt(command), timeout, count)

    def stderr(self) -> str:
        """What kodev wrote on stderr: under --json nothing but Python's last words (a traceback)."""
        return "\n".join(self.proc.err_lines())


@dataclass
class Finished:
    """A `kodev … --json` that ran to its end: its exit code, its events (each checked), its stderr."""

    returncode: int
    events: list[Event]
    stderr: str
    stdout: str

    def all(self, name: str, match: Match = _any) -> list[Event]:
        return [e for e in self.events if e["event"] == name and match(e)]

    def output(self) -> str:
        return f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def error(self) -> Event:
        """The one error that ended kodev (its `fatal` error event)."""
        fatal = self.all("error", lambda e: bool(e["fatal"]))
        assert len(fatal) == 1, f"{len(fatal)} fatal error events\n{self.output()}"
        return fatal[0]


def finished(done: subprocess.CompletedProcess[str]) -> Finished:
    """The events of a finished `kodev … --json`; its last one is `exit`, with the process's exit code."""
    result = Finished(done.returncode, [], done.stderr, done.stdout)
    result.events = parse(done.stdout.splitlines(), result.output)
    assert result.events and result.events[-1]["event"] == "exit", f"no exit event last\n{result.output()}"
    assert result.events[-1]["code"] == done.returncode, result.output()
    return result


def parse(lines: Iterable[str], output: Callable[[], str] = lambda: "") -> list[Event]:
    """`lines` of stdout as events, each held to the schema (`output` says what kodev wrote, for a failure)."""
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line on stdout: {line!r}\n{output()}") from None
        check_event(event)
        events.append(event)
    return events


def _rebuilt(command: str) -> Match:
    return lambda e: _short(e["command"]) == command and e["outcome"] == "rebuilt"


def _short(command: str) -> str:
    return command.rstrip("/").rsplit("/", 1)[-1]
