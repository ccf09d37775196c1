"""The UI's two faces without Go or Docker: text for people (unchanged lines, aligned columns, the status
line kept out of the way of other output) and `--json` events held to the schema."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from kodev import ui as ui_module
from kodev.affected import FileChange
from kodev.debug.rpc import Discarded, Restarted
from kodev.deliver import Delivered
from kodev.errors import CompileError, ConfigError, KodevError
from kodev.gobuild import _PACKAGE_LINE
from kodev.gomod import ModuleGraph
from kodev.jsonui import EVENTS, SCHEMA, JsonUI, check_event
from kodev.publish import Published
from kodev.report import CommandReport
from kodev.ui import UI, enable_debug_log

ERASE = "\r\x1b[2K"


def published(name: str) -> Published:
    return Published(f"kodev.local/{name}:latest", "sha256:" + "ab" * 32, 9_900_000, 0.11, slim=True)


def rebuilt(name: str) -> CommandReport:
    return CommandReport(name, "rebuilt", 0.52, 0.29, 0.0, published(name),
                         (Delivered(f"svc-{name}", "recreated", 0.12, "c0ffee"),))


def human(status: bool = False) -> tuple[UI, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return UI(stdout=out, stderr=err, status=status), out, err


def events(out: io.StringIO) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    for event in found:
        check_event(event)
    return found


# --- text -------------------------------------------------------------------------------------------

def test_semantic_calls_print_the_lines_people_and_tests_know(tmp_path: Path) -> None:
    ui, out, err = human()
    ui.graph_loaded(ModuleGraph({}, {}, (), listed=193), 0.684)
    ui.changes([FileChange(tmp_path / "internal/greeting/greeting.go", "modified")], tmp_path, ["server"])
    ui.watching([tmp_path])
    ui.service_exited("api", 3, ["boom"])
    ui.service_exited("api", 0, [])
    ui.debugger_listening("api", "127.0.0.1:2345")
    ui.debugger_restarted("api", Restarted((Discarded("/src/main.go:12", "could not find statement"),)))
    ui.debugger_restarted("api", Restarted((), resumed=False))
    ui.proxy_listening("web", "127.0.0.1:8080", "127.0.0.1:9000")
    ui.proxy_reloaded("web", 2, 0.1)  # a person sees the page reload: no line
    ui.direct_learned("server", True, "")  # a person sees go build faster: no line
    ui.daemon_lost("unix:///x.sock")
    ui.daemon_back()
    ui.kube_applied("dev", "team", ["deployment/api", "configmap/c"], 0.41)
    ui.kube_rolled_out(["deployment/api"], 3.2)
    ui.config_reloaded(tmp_path / "kodev.toml")
    ui.config_rejected(tmp_path / "kodev.toml", ConfigError("bad key. kodev keeps running"))
    assert err.getvalue().splitlines() == [
        "package graph: 0 packages (0.68s)",
        "changed: internal/greeting/greeting.go",
        f"watching {tmp_path} — save a file to rebuild; Ctrl-C to stop",
        "warning: api exited with code 3. Its last output: 'boom'. The next good build starts it again.",
        "api exited with code 0; the next good build starts it again.",
        "api: Delve listens on 127.0.0.1:2345; attach your debugger there (it stays attached across saves).",
        "warning: api: breakpoint at /src/main.go:12 is gone from the new code (could not find statement).",
        "api: restarted on the new build, stopped at its start: your debugger held it, so it runs when you "
        "continue it there.",
        "web: open http://127.0.0.1:8080/ (kodev's dev proxy for the app on 127.0.0.1:9000): requests wait out "
        "rebuilds, and pages reload when the new code serves.",
        "warning: the Docker daemon at unix:///x.sock is not answering. kodev keeps watching and retries; when it "
        "is back, everything is rebuilt and restarted.",
        "the Docker daemon is back: rebuilding and restarting",
        "  kubernetes applied 0.41s  2 objects to dev (namespace team)",
        "  kubernetes rolled out 3.20s  deployment/api ready",
        f"{tmp_path / 'kodev.toml'} changed: applying it (services are recreated)",
        "error: bad key. kodev keeps running",
    ]
    assert out.getvalue() == ""
    assert ERASE not in err.getvalue()
    assert not UI(stdout=out, stderr=err)._status  # not a terminal: no status line unless forced


def test_result_lines_line_up_whatever_the_names() -> None:
    ui, _, err = human()
    names = ["apiserver_receive_adapter", "appender", "x"]
    ui.align(names)
    for name in names:
        ui.report(rebuilt(name))
    columns = {line.index(" rebuilt in ") for line in err.getvalue().splitlines()}
    assert len(columns) == 1, err.getvalue()
    ui.align(["a", "much_longer_name_after_a_reload_of_kodev_toml"])  # a reload with new names
    ui.report(rebuilt("a"))
    ui.report(rebuilt("much_longer_name_after_a_reload_of_kodev_toml"))
    last = err.getvalue().splitlines()[-2:]
    assert last[0].index(" rebuilt in ") == last[1].index(" rebuilt in "), last


def test_a_build_without_a_loop_aligns_its_own_names() -> None:
    """`kodev build` never calls align: the names of its `go build` size the column."""
    ui, _, err = human()
    with ui.building(["apiserver_receive_adapter", "appender"]):
        pass
    for name in ("apiserver_receive_adapter", "appender"):
        ui.report(CommandReport(name, "image", 0.2, None, 0.01, published(name)))
    columns = {line.index(" image ") for line in err.getvalue().splitlines()}
    assert len(columns) == 1, err.getvalue()


def test_status_line_shows_progress_and_gets_out_of_the_way_of_other_output() -> None:
    """A terminal where stdout and stderr are one: every other line starts on a cleared line."""
    screen = io.StringIO()
    ui = UI(stdout=screen, stderr=screen, status=True)
    ui.estimate = 200
    with ui.building(["server", "hello"]) as on_package:
        for index in range(3):
            on_package(f"example.com/m/p{index}")
        ui._status._draw()  # type: ignore[union-attr]  # what the refresh thread does every tick
        ui.service_line("api", "cyan", 5, "a log line while go build runs")
    drawn = screen.getvalue()
    assert re.search(r"go build server, hello · 3/~200 packages · \d+\.\ds", drawn), drawn
    assert f"{ERASE}api   | a log line while go build runs\n" in drawn  # erased first, not appended to it
    ui.report(rebuilt("server"))
    assert "image, load, deliver hello" in screen.getvalue().rsplit("rebuilt in", 1)[1]
    ui.report(rebuilt("hello"))
    assert screen.getvalue().endswith("sent\n"), "the status line must be gone once every command reported"
    for line in screen.getvalue().split("\n"):  # no status text is ever left on a line that stays
        assert not re.search(r"go build server|image, load, deliver", line.rsplit(ERASE, 1)[-1]), line


def test_status_line_goes_on_a_compile_error() -> None:
    screen = io.StringIO()
    ui = UI(stdout=screen, stderr=screen, status=True)
    with pytest.raises(CompileError), ui.building(["server"]):
        raise CompileError("go build failed", "x.go:1:1: bad\n")
    ui.error(CompileError("go build failed", "x.go:1:1: bad\n"))
    assert screen.getvalue().endswith("error: go build failed\nx.go:1:1: bad\n")
    assert ui._status is not None and not ui._status.active


def test_package_lines_of_go_build_v() -> None:
    for line in ("example.com/hello/internal/greeting", "internal/goarch", "net/http", "golang.org/x/net/v2",
                 "gopkg.in/yaml.v3"):
        assert _PACKAGE_LINE.match(line), line
    for line in ("# example.com/hello/internal/greeting", "internal/greeting/greeting.go:6:8: syntax error",
                 "go: downloading example.com/x v1.0.0", "\tfoo.go:1: note", "too many errors", "",
                 "note: module requires Go 1.99"):
        assert not _PACKAGE_LINE.match(line), line


# --- events -----------------------------------------------------------------------------------------

def test_every_semantic_call_is_one_schema_valid_event(tmp_path: Path) -> None:
    out = io.StringIO()
    ui = JsonUI("watch", stdout=out)
    ui.graph_loaded(ModuleGraph({}, {}, (), listed=193), 0.68)
    ui.changes([FileChange(tmp_path / "b.go", "modified"), FileChange(tmp_path / "a.go", "added")], tmp_path,
               ["server"])
    with ui.building(["server"]) as on_package:
        on_package("example.com/m")
    ui.report(rebuilt("server"))
    ui.report(CommandReport("hello", "unchanged", 0.3, 0.29, 0.0))
    ui.superseded(["server"])
    ui.direct_learned("server", False, "its compile or link failed when kodev ran it")
    ui.watching([tmp_path])
    ui.service_line("api", "cyan", 5, "hi", "stderr")
    ui.raw("stdout", "plain", "api")
    ui.service_exited("api", 3, ["boom"])
    ui.debugger_listening("api", "127.0.0.1:2345")
    ui.debugger_restarted("api", Restarted((Discarded("/src/main.go:12", "could not find statement"),)))
    ui.proxy_listening("web", "127.0.0.1:8080", "127.0.0.1:9000")
    ui.proxy_reloaded("web", 3, 0.25)
    ui.proxy_reloaded("web", 0, 0.0)
    ui.daemon_lost("unix:///x.sock")
    ui.daemon_back()
    ui.kube_applied("dev", "team", ["deployment/api", "configmap/c"], 0.41)
    ui.kube_rolled_out(["deployment/api"], 3.2)
    ui.config_reloaded(tmp_path / "kodev.toml")
    ui.config_rejected(tmp_path / "kodev.toml", ConfigError("bad"))
    ui.info("note this")
    ui.warn("careful")
    ui.result("kodev.local/server:latest")  # stdout stays pure JSON: the ref is in the events
    ui.stage("go build", "server", 1.0)
    ui.error(KodevError("the end"), fatal=True)
    ui.close(1)
    found = events(out)
    assert [e["event"] for e in found] == [
        "started", "graph.loaded", "changes", "build.started", "build.finished", "image.published", "delivered",
        "command.result", "command.result", "build.superseded", "build.learned", "watching", "service.log",
        "service.log", "service.exited", "debugger.listening", "debugger.restarted", "proxy.listening", "proxy.held",
        "proxy.reload", "proxy.reload", "daemon.lost", "daemon.back", "kube.applied", "kube.rolled_out",
        "config.reloaded", "config.rejected", "error", "message",
        "message", "error", "exit"]
    assert all(e["schema"] == SCHEMA for e in found)
    by = {e["event"]: e for e in found}
    assert by["changes"]["files"] == [{"path": "a.go", "change": "added"}, {"path": "b.go", "change": "modified"}]
    assert by["build.finished"]["packages"] == 1
    assert by["build.superseded"]["commands"] == ["server"]
    assert by["build.learned"] == {**by["build.learned"], "command": "server", "direct": False,
                                   "reason": "its compile or link failed when kodev ran it"}
    assert by["debugger.restarted"]["discarded"] == [{"location": "/src/main.go:12",
                                                      "reason": "could not find statement"}]
    assert by["debugger.restarted"]["resumed"] is True
    assert by["proxy.listening"] == {**by["proxy.listening"], "address": "127.0.0.1:8080", "upstream": "127.0.0.1:9000"}
    assert (by["proxy.held"]["count"], by["proxy.held"]["longest_seconds"]) == (3, 0.25)
    assert by["delivered"] == {**by["delivered"], "service": "svc-server", "how": "recreated", "seconds": 0.12,
                               "serving_seconds": 0.52}
    assert by["image.published"]["bytes_sent"] == 9_900_000 and by["image.published"]["slim"] is True
    assert found[-2] == {**found[-2], "kind": "KodevError", "message": "the end", "fatal": True}
    assert found[-1]["code"] == 1
    assert by["kube.applied"] == {**by["kube.applied"], "context": "dev", "namespace": "team",
                                  "objects": ["deployment/api", "configmap/c"], "seconds": 0.41}
    assert set(EVENTS) - {e["event"] for e in found} == {"build.progress", "build.failed"}


def test_a_compile_error_is_a_failure_event_with_the_compilers_text() -> None:
    out = io.StringIO()
    ui = JsonUI("build", stdout=out)
    output = "# example.com/m\n./main.go:3:1: syntax error: unexpected }\n"
    with pytest.raises(CompileError), ui.building(["server"]):
        raise CompileError("go build failed for example.com/m (in /m).", output)
    ui.error(CompileError("go build failed for example.com/m (in /m).", output), fatal=True)
    failed, error = events(out)[-2:]
    assert failed["event"] == "build.failed" and failed["output"] == output and failed["commands"] == ["server"]
    assert error == {**error, "event": "error", "kind": "CompileError", "output": output,
                     "message": "go build failed for example.com/m (in /m)."}


def test_check_event_refuses_what_the_schema_does_not_say() -> None:
    good = {"schema": SCHEMA, "event": "exit", "time": "2026-11-28T10:00:00.000Z", "code": 0}
    check_event(good)
    for bad in ({**good, "schema": "kodev.events/2"}, {**good, "event": "nope"}, {**good, "code": "0"},
                {**good, "extra": 1}, {k: v for k, v in good.items() if k != "code"}, {**good, "time": "yesterday"},
                {**good, "code": True}):
        with pytest.raises(ValueError):
            check_event(bad)


def test_debug_lines_go_above_the_status_line_too() -> None:
    """--debug's channel writes through the UI once it has a status line: erased first, never appended."""
    logger = logging.getLogger("kodev")
    handlers, level = list(logger.handlers), logger.level
    enable_debug_log()
    screen = io.StringIO()
    ui = UI(stdout=screen, stderr=screen, status=True)
    try:
        with ui.building(["server"]):
            ui._status._draw()  # type: ignore[union-attr]  # what the refresh thread does every tick
            logging.getLogger("kodev.test").debug("a tolerated failure")
        assert f"{ERASE}debug: kodev.test: a tolerated failure\n" in screen.getvalue(), screen.getvalue()
    finally:
        ui_module._DebugHandler.sink = None
        logger.handlers[:], logger.level = handlers, level
