"""`kodev run --json --watch` against a real Go and a real dockerd: a binary-only change swapped in (or the
container recreated, KODEV_SWAP=0), a compile error survived, an exited container reported and started again
by the next build, a save made while starting not lost (tests/integration/run_support.py)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.integration.json_events import Event, Events
from tests.integration.process import KodevProcess, fetch, free_port
from tests.integration.run_support import Ctx, ctx, module, page, server  # noqa: F401 - fixtures


def _rebuilt(events: Events, since: int) -> Event:
    """The next `command.result` after `since` that built a new image (of the one command kodev runs)."""
    return events.wait("command.result", since, lambda e: e["outcome"] == "rebuilt")


def test_watch_rebuilds_survives_a_compile_error_and_cleans_up(module: Path, ctx: Ctx,  # noqa: F811
                                                               delivery: str) -> None:
    """--watch swaps a binary-only change into the running container (the default), or recreates it
    (KODEV_SWAP=0); a compile error keeps it serving; at the end no container of either kind is left."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    greeting = module / "internal" / "greeting" / "greeting.go"
    original = greeting.read_text()
    assert '"Hello, "' in original
    name = ctx.name("watch")
    how = "swapped" if delivery == "swap" else "recreated"
    proc = KodevProcess(server(ctx, "watch", port, "--watch"), module)
    events = Events(proc)
    seen: list[str] = []
    try:
        page(proc, url, "Hello, kodev!", timeout=90)
        events.wait("watching", timeout=30)  # said once the watches are in place: no wait needed
        first = ctx.container(name)
        assert first is not None
        seen.append(first.id)

        mark = events.mark()
        greeting.write_text(original.replace('"Hello, "', '"Howdy, "'))
        page(proc, url, "Howdy, kodev!")
        assert [d["how"] for d in _rebuilt(events, mark)["delivered"]] == [how], proc.output()
        second = ctx.container(name)
        assert second is not None
        if delivery == "swap":
            assert second.id == first.id, f"a binary-only change recreated the container\n{proc.output()}"
        else:
            assert second.id != first.id, "the container was not recreated on the new image"
            seen.append(second.id)
            assert ctx.container(first.id) is None, "the replaced container was left behind"

        mark = events.mark()
        greeting.write_text(original.replace('"!"', "undefinedThing"))
        failed = events.wait("build.failed", mark, timeout=60)
        assert "undefinedThing" in failed["output"], failed  # the compiler's own words
        error = events.wait("error", mark, lambda e: e["kind"] == "CompileError")
        assert error["fatal"] is False, error
        time.sleep(1)
        body = fetch(url)
        assert body is not None and "Howdy, kodev!" in body, f"old container stopped serving: {body!r}"
        still = ctx.container(name)
        assert still is not None and still.id == second.id and still.status == "running"

        mark = events.mark()
        greeting.write_text(original.replace('"Hello, "', '"Hi there, "'))
        page(proc, url, "Hi there, kodev!")
        assert [d["how"] for d in _rebuilt(events, mark)["delivered"]] == [how], proc.output()
        third = ctx.container(name)
        assert third is not None
        if delivery == "swap":
            assert third.id == first.id, proc.output()
        else:
            assert third.id not in seen
            seen.append(third.id)

        code = proc.stop(signal.SIGINT, timeout=30)
        assert code == 0, proc.output()
        assert events.wait("exit")["code"] == 0, proc.output()
        for container_id in seen:
            assert ctx.container(container_id) is None, f"container {container_id[:12]} left\n{proc.output()}"
        assert ctx.container(name) is None
        assert "Traceback" not in proc.output()
        assert events.fatal() == [], proc.output()
    finally:
        proc.kill()


def test_watch_reports_an_exited_container_and_restarts_it_on_the_next_build(module: Path,  # noqa: F811
                                                                             ctx: Ctx) -> None:  # noqa: F811
    greeting = module / "internal" / "greeting" / "greeting.go"
    original = greeting.read_text()
    name = ctx.name("exits")
    proc = KodevProcess(["run", "--json", "--watch", "--name", name, "./cmd/hello", "--", "-exit", "3", "dan"],
                        module)
    events = Events(proc)

    def log(line: str) -> Event:
        return events.wait("service.log", match=lambda e: e["service"] == name and e["line"] == line, timeout=30)

    def exited(count: int) -> Event:
        return events.wait("service.exited", match=lambda e: e["service"] == name and e["code"] == 3, timeout=30,
                           count=count)

    try:
        events.wait("watching", timeout=90)
        log("Hello, dan!")
        exited(1)
        assert proc.process.poll() is None, "kodev --watch ended with its container\n" + proc.output()
        mark = events.mark()
        greeting.write_text(original.replace('"Hello, "', '"Again, "'))
        log("Again, dan!")
        exited(2)
        assert events.all("service.exited", since=mark), proc.output()  # the new container's exit, reported
        code = proc.stop(signal.SIGTERM, timeout=30)
        assert code == 0, proc.output()
        assert events.wait("exit")["code"] == 0, proc.output()
        assert ctx.container(name) is None, proc.output()
        assert "Traceback" not in proc.output()
        assert events.fatal() == [], proc.output()
    finally:
        proc.kill()


def test_save_while_starting_is_not_lost(module: Path, ctx: Ctx) -> None:  # noqa: F811
    # The issue: "the result always reflects the last save". A save made while the first build starts the
    # container (or right as kodev says `watching`: a save is seen from now on) must be built too.
    greeting = module / "internal" / "greeting" / "greeting.go"
    original = greeting.read_text()
    name = ctx.name("early")
    proc = KodevProcess(["run", "--json", "--watch", "--name", name, "./cmd/hello", "--", "-exit", "0", "eve"],
                        module)
    events = Events(proc)
    try:
        deadline = time.monotonic() + 90
        # a tight loop: save the moment the first build is done
        while not events.all(match=lambda e: e["event"] in ("command.result", "watching")):
            assert proc.process.poll() is None and time.monotonic() < deadline, proc.output()
            time.sleep(0.001)
        greeting.write_text(original.replace('"Hello, "', '"Early, "'))
        events.wait("service.log", match=lambda e: e["service"] == name and e["line"] == "Early, eve!", timeout=10)
        assert proc.stop(signal.SIGINT, timeout=30) == 0, proc.output()
        assert ctx.container(name) is None
    finally:
        proc.kill()
