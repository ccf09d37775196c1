"""A kodev process under test: started like a user starts it, read line by line, waited on by condition."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
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
        self._readers = [threading.Thread(target=self._read, args=(stream, sink), daemon=True)
                         for stream, sink in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

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

    def finished(self) -> bool:
        """Whether kodev has exited and all it wrote has been read: its output can grow no more."""
        return self.process.poll() is not None and not any(reader.is_alive() for reader in self._readers)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 90, stream: str = "stderr") -> None:
        """Wait until `pattern` has appeared `count` times (fails with the whole output otherwise, at once if
        kodev has exited: then it never will)."""
        def failure() -> str:
            return f"{pattern!r} x{count} not seen; kodev exited={self.process.poll()}\n{self.output()}"

        def seen() -> bool:
            finished = self.finished()  # first: output read before it counts
            if self.count(pattern, stream) >= count:
                return True
            if finished:
                raise AssertionError(failure())
            return False

        wait_until(seen, timeout, failure)

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


# --- ports -------------------------------------------------------------------------------------------------
#
# A test picks a port for a server that a container binds seconds later (after kodev has built it), on the
# host network that every test process on this machine shares: parallel workers (pytest-xdist), other suites
# run on the same machine, and the client sockets of all of them. A port the kernel hands out for `bind(0)`
# comes from the ephemeral range, where any outgoing connection (a test polling a page) may take it in the
# meantime, and a second worker may be handed it too. So ports come from outside the ephemeral range, and
# each one handed out is reserved, for as long as the process that took it lives, by an exclusive lock on a
# file of its own in a directory all test processes share: no other test process (of this suite or of another
# checkout's) hands it out meanwhile. A port some other program listens on is passed over.

_PORT_LOCKS = Path(tempfile.gettempdir()) / "kodev-test-ports"
_held_ports: dict[int, int] = {}  # port -> the descriptor of its lock file, held while this process lives
_ports_lock = threading.Lock()
_port_random = random.Random()  # its own generator: tests that seed the global one do not make ports collide


def _port_ranges() -> list[tuple[int, int]]:
    """[start, stop) ranges of ports kodev's tests may hand out: above 15000, outside the ephemeral range."""
    low, high = 32768, 60999
    with contextlib.suppress(OSError, ValueError):
        low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ranges = [(15000, low), (high + 1, 65536)]
    return [(start, stop) for start, stop in ranges if stop - start >= 1000] or [(15000, 65536)]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on, reserved for this process: no other test process (another
    xdist worker, another checkout's suite) gets it from here while this one runs."""
    ranges = _port_ranges()
    candidates = [port for start, stop in ranges for port in range(start, stop)]
    first = _port_random.randrange(len(candidates))
    if not _PORT_LOCKS.is_dir():
        _PORT_LOCKS.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            _PORT_LOCKS.chmod(0o1777)  # shared by every user's test processes, as /tmp is
    with _ports_lock:
        for index in range(len(candidates)):
            port = candidates[(first + index) % len(candidates)]
            if port in _held_ports:
                continue
            fd = os.open(_PORT_LOCKS / str(port), os.O_RDONLY | os.O_CREAT, 0o444)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # another test process holds it
            if not _bindable(port):
                os.close(fd)  # the lock goes with it
                continue
            _held_ports[port] = fd
            return port
    raise AssertionError(f"no free port left in {ranges}")
