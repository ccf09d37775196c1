"""Delve's JSON-RPC API (api-version 2), as kodev needs it: restart the debugged process on a new binary.

Delve speaks JSON-RPC 1.0 over TCP (Go's net/rpc/jsonrpc): `{"method": "RPCServer.NAME", "params": [ARGS],
"id": N}`, answered by `{"id": N, "result": ..., "error": ...}`. kodev connects as one more client of a
headless `--accept-multiclient` Delve, so the IDE's own connection is never touched.

Who holds the process matters to an IDE. A `continue` is answered only when the process next stops, and
that answer is how an IDE learns of a stop: when kodev halts the process to restart it, a `continue` the IDE
sent returns and the IDE shows the process paused. If kodev then let it run, the IDE would be out of step
(paused on screen, running in fact; its next `continue` would wait behind kodev's and run past the next
breakpoint). So kodev resumes the process after a restart only when kodev's own `continue` was what held
it — nobody else had stopped or continued it since — and otherwise leaves it stopped for the debugger.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any

from kodev.errors import KodevError

ANSWER_SECONDS = 60.0  # Delve restarting a large binary loads its debug information: seconds, not minutes


class DelveRPCError(KodevError):
    """Delve could not be reached, or refused a request."""


@dataclass(frozen=True)
class Discarded:
    """A breakpoint Delve could not set again on the new binary (its line is gone, say)."""

    location: str  # FILE:LINE, or the function name
    reason: str


@dataclass(frozen=True)
class Restarted:
    """What a restart did: the breakpoints it could not carry over, and whether kodev let the process run on
    (False: a debugger held it, and it waits for that debugger's continue)."""

    discarded: tuple[Discarded, ...]
    resumed: bool = True


class DelveClient:
    """One connection to Delve. Requests are answered in order; an answer to an earlier request that
    kodev did not wait for (a `continue` returns only when the process next stops) is skipped."""

    def __init__(self, connection: socket.socket) -> None:
        self._socket = connection
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._next_id = 0
        self._running: int | None = None  # the id of kodev's `continue` while it is unanswered
        self._stop: dict[str, Any] = {}  # the state kodev's last `continue` was answered with (why it stopped)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # a character may straddle two reads

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> DelveClient:
        """Connect to HOST:PORT, retrying while Delve starts listening (up to `timeout` seconds)."""
        host, _, port = address.rpartition(":")
        deadline = time.monotonic() + timeout
        while True:
            try:
                connection = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
                connection.settimeout(ANSWER_SECONDS)  # `timeout` is for connecting; a restart takes longer
                return cls(connection)
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise DelveRPCError(f"cannot reach Delve at {address}: {exc}. Is the debug container "
                                        "running, and its Delve port published or on the host network?") from None
                time.sleep(0.05)

    def close(self) -> None:
        self._socket.close()

    def send(self, method: str, args: dict[str, Any]) -> int:
        """Send a request without waiting for its answer; its id."""
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"method": f"RPCServer.{method}", "params": [args], "id": request_id}) + "\n"
        try:
            self._socket.sendall(line.encode())
        except OSError as exc:
            raise DelveRPCError(f"lost the connection to Delve sending {method}: {exc}") from None
        return request_id

    def call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Send a request and wait for its answer's `result`."""
        wanted = self.send(method, args)
        while True:
            answer = self._read()
            if answer.get("id") != wanted:
                self._skipped(answer)
                continue  # the late answer to a request nobody waits for
            if answer.get("error"):
                raise DelveRPCError(f"Delve refused {method}: {answer['error']}")
            result = answer.get("result")
            return result if isinstance(result, dict) else {}

    def _skipped(self, answer: dict[str, Any]) -> None:
        if self._running is not None and answer.get("id") == self._running:
            self._running = None  # the process stopped: at a breakpoint, it exited, or someone halted it
            result = answer.get("result")
            self._stop = result if isinstance(result, dict) else {}

    def _answered_meanwhile(self) -> None:
        """Take in what Delve answered while kodev was not asking (without waiting): each a late answer."""
        while select.select([self._socket], [], [], 0)[0]:
            self._receive()
        while (value := self._whole()) is not None:
            self._skipped(value)

    def _read(self) -> dict[str, Any]:
        while (value := self._whole()) is None:
            self._receive()
        return value

    def _whole(self) -> dict[str, Any] | None:
        """The next whole answer in the buffer, taken out of it; None if none is whole yet."""
        text = self._buffer.lstrip()
        try:
            value, end = self._decoder.raw_decode(text)
        except ValueError:
            return None  # incomplete (or empty): read more
        self._buffer = text[end:]
        return value if isinstance(value, dict) else {}

    def _receive(self) -> None:
        try:
            chunk = self._socket.recv(65536)
        except OSError as exc:
            raise DelveRPCError(f"lost the connection to Delve: {exc}") from None
        if not chunk:
            raise DelveRPCError("Delve closed the connection")
        self._buffer += self._utf8.decode(chunk)

    # --- what kodev asks -------------------------------------------------------------------------------

    def resume(self) -> None:
        """Let the process run, by kodev's own `continue` (answered at the next stop: not waited for)."""
        self._running = self.send("Command", {"name": "continue"})

    def holds_run(self) -> bool:
        """Whether kodev's `continue` still holds the process: nobody has stopped it since kodev resumed it."""
        if self._running is not None:
            self._answered_meanwhile()
        return self._running is not None or self._exited_on_its_own()

    def _exited_on_its_own(self) -> bool:
        """kodev's `continue` was answered because the app exited: nobody else had it (a save starts it again)."""
        return bool((self._stop.get("State") or {}).get("exited")) and self._running is None

    def restart(self, resume: bool = False) -> Restarted:
        """Halt the process (if running) and restart it from the same path (a new binary renamed there is what
        runs); Delve sets each logical breakpoint again on the new code, reporting those it could not, and
        every client stays connected. The process runs on if kodev's `continue` held it (see above), or with
        `resume` (kodev never let it run yet)."""
        ours = self.holds_run()
        with contextlib.suppress(DelveRPCError):  # not running: at a breakpoint, or exited; restarted anyway
            self.call("Command", {"name": "halt"})  # Delve answers kodev's pending `continue` first
        if ours and _at_breakpoint(self._stop):  # it stopped at a breakpoint just before kodev's halt
            ours = False
        result = self.call("Restart", {"Position": "", "ResetArgs": False, "NewArgs": [], "Rerecord": False,
                                       "Rebuild": False, "NewRedirects": ["", "", ""]})
        discarded = tuple(_discarded(entry) for entry in result.get("DiscardedBreakpoints") or [])
        self._stop = {}
        if ours or resume:
            self.resume()
        return Restarted(discarded, ours or resume)


def _at_breakpoint(stopped: dict[str, Any]) -> bool:
    state = stopped.get("State") or {}
    thread = state.get("currentThread") or {}
    return bool(thread.get("breakPoint"))


def _discarded(entry: dict[str, Any]) -> Discarded:
    breakpoint = entry.get("Breakpoint") or {}  # api.DiscardedBreakpoint has no JSON tags: Go's field names
    if breakpoint.get("file"):
        location = f"{breakpoint['file']}:{breakpoint.get('line', 0)}"
    else:
        location = str(breakpoint.get("functionName") or breakpoint.get("name") or "?")
    return Discarded(location, str(entry.get("Reason", "")))
