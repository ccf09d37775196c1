"""A kodev process under test: started like a user starts it, read line by line, waited on by condition."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path


class KodevProcess:
    """`python -m kodev ARGS` in `cwd`; stdout and stderr collected by threads, never blocking the test."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                 ignore_sigint: bool = False) -> None:
        """`ignore_sigint`: start kodev with SIGINT ignored, as `nohup kodev … &` does."""
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kodev", *args], cwd=cwd, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            preexec_fn=_ignore_sigint if ignore_sigint else None)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        for stream, sink in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._lock:
                sink.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])

    def err_lines(self) -> list[str]:
        with self._lock:
            return list(self.stderr)

    def out_lines(self) -> list[str]:
        with self._lock:
            return list(self.stdout)

    def count(self, pattern: str, stream: str = "stderr") -> int:
        lines = self.err_lines() if stream == "stderr" else self.out_lines()
        return sum(1 for line in lines if re.search(pattern, line))

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 90, stream: str = "stderr") -> None:
        """Wait until `pattern` has appeared `count` times (fails with the whole output otherwise)."""
        wait_until(lambda: self.count(pattern, stream) >= count, timeout,
                   lambda: f"{pattern!r} x{count} not seen; kodev exited={self.process.poll()}\n{self.output()}")

    def send(self, sig: int = signal.SIGINT) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"kodev did not exit within {timeout}s of {sig}\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """A child inherits an *ignored* SIGINT (pytest started in the background): make it default for kodev."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous == signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def wait_until(condition: Callable[[], object], timeout: float, message: Callable[[], str] | str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message() if callable(message) else message or "condition not met in time")


def fetch(url: str) -> str | None:
    """The body at `url`, or None when nothing answers yet (127.0.0.1 only)."""
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def wait_for_page(url: str, text: str, timeout: float = 60) -> str:
    """Poll `url` until its body contains `text`; the body."""
    found: list[str] = []

    def ready() -> bool:
        body = fetch(url)
        if body is not None:
            found[:] = [body]
        return body is not None and text in body

    wait_until(ready, timeout, lambda: f"{url} never served {text!r}; last body: {found[:1]}")
    return found[0]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
