"""Measuring tools: a kodev process read line by line with timestamps, page polling, /proc readings, stats.

Everything here times with `time.monotonic()` in the benchmark process. A line's time is when the
benchmark read it from the pipe (kodev flushes every line), so it is an upper bound of when kodev wrote it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLL_INTERVAL = 0.01  # seconds between two requests while waiting for a page
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(RuntimeError):
    """A measurement that could not be taken (timeout, a process that died); carries what was seen."""


# --- a kodev process ----------------------------------------------------------------------------------

@dataclass
class Line:
    at: float  # time.monotonic() when read
    stream: str  # "stdout" or "stderr"
    text: str


class Process:
    """A subprocess whose stdout and stderr lines are collected, with the time each was read."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: list[Line] = []
        self._lock = threading.RLock()  # reentrant: error messages read the tail while holding it
        self._changed = threading.Condition(self._lock)
        self._readers = [
            threading.Thread(target=self._read, args=(stream, name), daemon=True)
            for stream, name in ((self.popen.stdout, "stdout"), (self.popen.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self, stream: object, name: str) -> None:
        for text in stream:  # type: ignore[attr-defined]
            now = time.monotonic()
            with self._changed:
                self.lines.append(Line(now, name, text.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def mark(self) -> int:
        """An index into the lines: `since(mark)` gives the lines read after this call."""
        with self._lock:
            return len(self.lines)

    def since(self, mark: int, pattern: str | None = None, stream: str | None = None) -> list[Line]:
        regex = re.compile(pattern) if pattern else None
        with self._lock:
            found = self.lines[mark:]
        return [line for line in found if (stream is None or line.stream == stream)
                and (regex is None or regex.search(line.text))]

    def wait_for(self, pattern: str, mark: int = 0, count: int = 1, timeout: float = 120,
                 stream: str | None = None) -> list[Line]:
        """The first `count` lines after `mark` matching `pattern`; BenchError on timeout or exit."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            with self._changed:
                found = [line for line in self.lines[mark:] if (stream is None or line.stream == stream)
                         and regex.search(line.text)]
                if len(found) >= count:
                    return found[:count]
                if self.popen.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise BenchError(f"{self.describe()} exited with {self.popen.returncode} before printing "
                                     f"{pattern!r}\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.describe()}: {pattern!r} x{count} not seen in {timeout:.0f}s\n"
                                     f"{self.tail()}")
                self._changed.wait(min(left, 0.5))

    def quiet_after(self, pattern: str, mark: int, quiet: float, timeout: float) -> list[Line]:
        """Lines matching `pattern` after `mark`, once none has come for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.since(mark, pattern)
            last = found[-1].at if found else None
            now = time.monotonic()
            if last is not None and now - last >= quiet:
                return found
            if now > deadline:
                return found
            time.sleep(0.05)

    def describe(self) -> str:
        return " ".join(Path(a).name if i == 0 else a for i, a in enumerate(self.argv))

    def tail(self, count: int = 40) -> str:
        with self._lock:
            return "\n".join(f"[{line.stream}] {line.text}" for line in self.lines[-count:])

    def send(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def stop(self, timeout: float = 60) -> int | None:
        """SIGINT (kodev's Ctrl-C: it removes its containers), then SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        return self.popen.returncode


def kodev_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kodev", *args]


# --- pages ----------------------------------------------------------------------------------------------

def fetch(port: int, path: str = "/", timeout: float = 0.5) -> str | None:
    """The body `127.0.0.1:port` serves at `path` (HTTP/1.0, raw socket: cheap to ask often), or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError:
        return None
    response = b"".join(chunks).decode("utf-8", errors="replace")
    head, _, body = response.partition("\r\n\r\n")
    return body if head.startswith("HTTP/1.") and " 200 " in head.split("\r\n", 1)[0] + " " else None


def wait_for_text(port: int, text: str, timeout: float = 60, interval: float = POLL_INTERVAL) -> float:
    """Poll until the page at 127.0.0.1:port contains `text`; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    last: str | None = None
    while True:
        body = fetch(port)
        now = time.monotonic()
        if body is not None:
            last = body
            if text in body:
                return now
        if now > deadline:
            raise BenchError(f"127.0.0.1:{port} never served {text!r} within {timeout:.0f}s; last body: "
                             f"{(last or '')[:200]!r}")
        time.sleep(interval)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /proc ----------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (not its children), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def memory_kb(pid: int, key: str = "VmHWM") -> int:
    """A /proc/PID/status memory figure in kB: VmHWM is the peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


# --- statistics -----------------------------------------------------------------------------------------

@dataclass
class Series:
    """The counted repetitions of one contender (seconds, or any unit)."""

    name: str
    values: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")


def pair_ratios(a: Series, b: Series) -> list[float]:
    return [x / y for x, y in zip(a.values, b.values, strict=False) if y > 0]


def pair_differences(a: Series, b: Series) -> list[float]:
    return [x - y for x, y in zip(a.values, b.values, strict=False)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def kodev_quiet_ms() -> int:
    """The quiet period (ms) that ends a batch of saves in kodev watch, for a rival's own watcher setting."""
    from kodev.config import WatchSettings

    return max(WatchSettings().debounce_ms, 1)


def saved_batches(root: Path, wanted: Callable[[object, str], bool], stop: threading.Event) -> Iterator[object]:
    """Batches of saves under `root` exactly as kodev watch batches them (kodev/filebatches.py), for a
    contender that has no watcher of its own: so that every watcher in a comparison waits alike."""
    from kodev.filebatches import batches

    return (batch for batch in batches([root], wanted, kodev_quiet_ms(), stop) if batch)
