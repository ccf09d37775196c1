"""A `kodev watch --json` session for the test_watch_*.py files: examples/hello with a server service on the
host network (and hello as a service or a build-only command), read through its events (json_events.py).

Every test writes its own kodev.toml (its own image repository and service names, so that concurrent runs on
one daemon never meet), starts `kodev watch --json`, edits files and waits, with a deadline, for kodev's
events, for what the services serve on 127.0.0.1 and for what the daemon holds. Only "nothing happened" is
checked by a short settle wait.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.json_events import Event, Events
from tests.integration.modules import GREETING, GREETING_SOURCE, SETTLE, write
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored, wait_for_page, wait_until

__all__ = ["GREETING", "GREETING_SOURCE", "ROUND_EVENTS", "SETTLE", "Session", "assert_delivered",
           "assert_no_traceback", "container_id", "containers", "delivered_how", "image_id", "set_greeting",
           "settle_and_assert_quiet", "short", "watching", "write"]

# What a round that saw a change says: none of them may come when nothing is to be rebuilt.
ROUND_EVENTS = ("changes", "build.started", "build.finished", "build.failed", "image.published", "delivered",
                "command.result", "error")


@dataclass
class Session:
    """One running `kodev watch --json`: the process, its events, the module it watches, services and port."""

    proc: KodevProcess
    events: Events
    module: Path
    repo: str
    server: str  # the server's service (and container) name
    hello: str  # the hello service name, when hello runs as a service
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def results(self, command: str, since: int = 0) -> list[Event]:
        """Every `command.result` of `command` (built, rebuilt, unchanged) after `since`."""
        return self.events.all("command.result", lambda e: short(e["command"]) == command, since)

    def wait_result(self, command: str, outcome: str, since: int = 0, count: int = 1, timeout: float = 90) -> Event:
        """Wait for the `count`-th `command.result` of `command` with `outcome` after `since`; that event."""
        def match(event: Event) -> bool:
            return short(event["command"]) == command and event["outcome"] == outcome

        self.events.wait("command.result", since, match, timeout, count)
        return self.events.all("command.result", match, since)[count - 1]

    def wait_rebuilt(self, command: str, since: int = 0, count: int = 1, timeout: float = 90) -> Event:
        return self.wait_result(command, "rebuilt", since, count, timeout)

    def wait_log(self, service: str, line: str, since: int = 0, timeout: float = 30) -> Event:
        """Wait for `service` to write exactly `line` (a `service.log` event)."""
        return self.events.wait("service.log", since, lambda e: e["service"] == service and e["line"] == line,
                                timeout)


def short(command: str) -> str:
    """A command's short name (cmd/NAME's NAME), whichever way an event names it."""
    return command.rstrip("/").rsplit("/", 1)[-1]


def set_greeting(module: Path, word: str) -> None:
    write(module / GREETING, GREETING_SOURCE % word)


def containers(client: Any, service: str) -> list[Any]:
    """kodev's containers for `service`, running or not."""
    # ignore_removed: the list inspects each one, and one removed meanwhile is not an error
    return list(client.containers.list(all=True, filters={"label": f"dev.kodev.service={service}"},
                                       ignore_removed=True))


def container_id(client: Any, service: str) -> str:
    """The ID of the one container kodev runs for `service` (waits for it to exist)."""
    found: list[Any] = []

    def one() -> bool:
        found[:] = containers(client, service)
        return len(found) == 1

    wait_until(one, 30, lambda: f"expected one container for {service}, found {[c.short_id for c in found]}")
    return str(found[0].id)


def image_id(client: Any, ref: str) -> str:
    return str(client.api.inspect_image(ref)["Id"])


def delivered_how(delivery: str) -> str:
    """How a binary-only change reaches a running service: swapped in place, or a recreated container."""
    return "swapped" if delivery == "swap" else "recreated"


def assert_delivered(client: Any, session: Session, result: Event, old: str, delivery: str) -> None:
    """After a binary-only change of the server, announced by its `command.result`: swapped into the
    container that served before (`old`), or (recreate) served by a new container, the old one gone."""
    hows = [d["how"] for d in result["delivered"] if d["service"] == session.server]
    assert hows == [delivered_how(delivery)], f"{result}\n{session.proc.output()}"
    now = container_id(client, session.server)
    if delivery == "swap":
        assert now == old, f"a binary-only change recreated the container\n{session.proc.output()}"
    else:
        assert now != old, f"the container was not recreated on the new image\n{session.proc.output()}"


def assert_no_traceback(proc: KodevProcess) -> None:
    assert "Traceback" not in "\n".join(proc.err_lines()), proc.output()


@contextlib.contextmanager
def watching(module: Path, repo: str, client: Any, *, hello: str = "", restart: bool = True,
             extra: str = "", started: bool = True, uid: str = "", port: int = 0, json: bool = True
             ) -> Iterator[Session]:
    """`kodev watch --json` on `module`, with a server service (host network), and hello as a service
    (`hello="service"`), as a build-only command (`hello="command"`) or not at all. With `started`, waits
    for the `watching` event and until the server serves its page, and at the end asserts that no error
    ended kodev or was unexpected; else yields at once. With --json, stderr must be empty at the end (only
    Python's last words would be there). Afterwards kodev is killed and every container it created is
    removed. `uid` names the services, `port` is the server's. `json=False` runs it without --json, for
    the one test of the human output here (it must not be `started` then: no events to wait on)."""
    assert json or not started
    uid = uid or uuid.uuid4().hex[:8]
    server, hello_service, port = f"srv-{uid}", f"hi-{uid}", port or free_port()
    config = f'''repo = "{repo}"

[services.{server}]
command = "./cmd/server"
args = ["-addr", "127.0.0.1:{port}"]
network = "host"
stop_timeout = 3
restart = {"true" if restart else "false"}
'''
    if hello == "service":
        config += f'''
[services.{hello_service}]
command = "./cmd/hello"
args = ["kodev-test"]
network = "host"
stop_timeout = 3
'''
    elif hello == "command":
        config += '\n[commands."./cmd/hello"]\n'
    write(module / "kodev.toml", config + extra)
    with sigint_not_ignored():
        proc = KodevProcess(["watch", "--json"] if json else ["watch"], cwd=module)
    session = Session(proc, Events(proc), module, repo, server, hello_service if hello == "service" else "", port)
    try:
        if started:
            session.events.wait("watching", timeout=120)
            assert_no_traceback(proc)
            try:
                wait_for_page(session.url, "Hello, kodev!", timeout=30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{proc.output()}") from None
        yield session
        assert_no_traceback(proc)
        if json:
            assert proc.err_lines() == [], f"with --json, stderr stays empty\n{proc.output()}"
        if started:
            assert session.events.fatal() == [], proc.output()
    finally:
        proc.kill()
        for container in client.containers.list(  # (ignore_removed: one may go while it is listed)
                all=True, filters={"label": f"dev.kodev.owner.pid={proc.process.pid}"}, ignore_removed=True):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def settle_and_assert_quiet(session: Session, since: int) -> None:
    """Wait SETTLE seconds: no event of a round (a change, a build, a result, an error) after the mark `since`."""
    time.sleep(SETTLE)
    noisy = session.events.all(match=lambda e: e["event"] in ROUND_EVENTS, since=since)
    assert not noisy, f"expected nothing to be rebuilt, got: {noisy}\n{session.proc.output()}"
