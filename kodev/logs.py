"""Following a container's output: its stdout and stderr line by line, then its exit code."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LineSink = Callable[[str, str, str], None]  # (service, "stdout" | "stderr", line)
# (service, container id, exit code or None when the stream broke without one, last lines)
ExitSink = Callable[[str, str, int | None, list[str]], None]


class LogFollower(threading.Thread):
    """Streams one container's stdout and stderr line by line until it ends, then reports its exit code."""

    def __init__(self, client: Any, service: str, container_id: str, on_line: LineSink, on_exit: ExitSink,
                 close_client: bool = False) -> None:
        """`close_client`: the client is this follower's own (Daemon.open_client), closed when it ends."""
        super().__init__(name=f"logs-{service}", daemon=True)
        self.client = client
        self.close_client = close_client
        self.service = service
        self.container_id = container_id
        self.on_line = on_line
        self.on_exit = on_exit
        self.last_lines: deque[str] = deque(maxlen=10)

    def run(self) -> None:
        # Two `logs --follow` streams rather than one attach: attach does not end when the container
        # exits on some daemons, while a followed log ends exactly then.
        errors = threading.Thread(target=self._pump, args=("stderr",), daemon=True)
        errors.start()
        self._pump("stdout")
        errors.join()
        code: int | None
        try:
            code = int(self.client.api.wait(self.container_id).get("StatusCode", 0))
        except Exception as exc:
            log.debug("no exit code for %s: %s", self.service, exc)
            code = None  # removed under us, or the daemon went away
        if self.close_client:
            with contextlib.suppress(Exception):
                self.client.close()
        self.on_exit(self.service, self.container_id, code, list(self.last_lines))

    def _pump(self, name: str) -> None:
        rest = b""
        try:
            for data in self.client.api.logs(self.container_id, stream=True, follow=True,
                                             stdout=name == "stdout", stderr=name == "stderr"):
                rest = self._emit(name, rest + data)
        except Exception as exc:
            log.debug("%s log stream of %s ended: %s", name, self.service, exc)
        if rest:
            self._line(name, rest)

    def _emit(self, name: str, data: bytes) -> bytes:
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._line(name, line)
        return rest

    def _line(self, name: str, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        self.last_lines.append(line)
        self.on_line(self.service, name, line)
