"""Issue 21, end to end: `kodev debug --json` on a real module, real Go, real dockerd and a real Delve built as
kodev builds it. An IDE-like client attaches at the address of the `debugger.listening` event and speaks
Delve's JSON-RPC as an IDE does (halt, CreateBreakpoint, continue, State, Eval, ListBreakpoints), through
kodev's own transport (`DelveClient.call`). A save swaps the new binary in and kodev restarts it under the same
Delve: that very connection, never redone, stops at its breakpoint again and sees the new value; the
breakpoint whose line the edit removed comes back in `debugger.restarted`; a compile error leaves the
debugged process and the session as they were.

Who holds the process decides what follows a restart (kodev/debug/rpc.py): before any debugger has touched
it, kodev's own `continue` holds it and a save's restart lets it run on (it serves the new build, nobody
pressing anything); once the IDE has halted and continued it, the IDE holds it, sees kodev's halt as a
pause, and the restarted process waits, stopped, for the IDE's continue (`resumed` false).

Both ways a binary reaches a container run: mount (the default here) and copy (`KODEV_SWAP_COPY=1`, with
`--wait`: the process waits for the debugger's first continue). Marked `module_proxy`: Delve is downloaded
and built.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pexpect
import pytest

from kodev.debug.delve import DELVE_VERSION, find_delve
from kodev.debug.rpc import DelveClient, DelveRPCError
from kodev.gotool import find_go
from kodev.platform import from_daemon
from tests.conftest import GOPROXY_OUTSIDE
from tests.integration.modules import Module, kodev_running
from tests.integration.process import free_port, wait_until

pytestmark = pytest.mark.module_proxy

SOURCE = """package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		greeting := "%s"
		fmt.Fprintln(w, greeting) // BREAK
	})
	http.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	http.HandleFunc("/note", func(w http.ResponseWriter, r *http.Request) {
		note, _ := os.ReadFile(os.Getenv("KO_DATA_PATH") + "/note.txt")
		w.Write(note)
	})
	if err := http.ListenAndServe(os.Args[1], nil); err != nil {
		panic(err)
	}
}
%s"""
HELPER = """
func init() { // keeps helper linked: the linker drops functions nothing calls
	if os.Getenv("KODEV_TEST_NEVER_SET") != "" {
		helper()
	}
}

func helper() int {
	return 42 // GONE
}
"""


def _line(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if marker in line)


def _get(url: str, into: list[str]) -> threading.Thread:
    def fetch() -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            into.append(response.read().decode().strip())

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    return thread


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _body(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode().strip())
    except OSError:
        return ""


def _listening(port: int) -> None:
    """Wait until the app accepts connections (Delve starts it, then it starts listening)."""
    wait_until(lambda: _accepts(port), 60, f"nothing listens on 127.0.0.1:{port}")


def _stopped_at(ide: DelveClient, line: int) -> None:
    state: dict[str, Any] = {}

    def stopped() -> bool:
        state.update(ide.call("State", {"NonBlocking": True})["State"])
        thread = state.get("currentThread") or {}
        return not state.get("Running") and thread.get("line") == line

    wait_until(stopped, 60, lambda: f"the request did not stop at line {line}: {state}")


def _value(ide: DelveClient, expression: str) -> str:
    scope = {"GoroutineID": -1, "Frame": 0, "DeferredCall": 0}
    config = {"FollowPointers": True, "MaxVariableRecurse": 1, "MaxStringLen": 64, "MaxArrayValues": 64,
              "MaxStructFields": -1}
    return str(ide.call("Eval", {"Scope": scope, "Expr": expression, "Cfg": config})["Variable"]["value"])


def _stops_with(ide: DelveClient, url: str, line: int, greeting: str) -> None:
    """A request stops at `line` with `greeting` in scope; continued, it answers `greeting`."""
    answers: list[str] = []
    request = _get(url, answers)
    _stopped_at(ide, line)
    assert _value(ide, "greeting") == greeting
    ide.send("Command", {"name": "continue"})  # answered at the next stop, whoever causes it
    request.join(30)
    assert answers == [greeting]


@pytest.fixture(scope="module")
def dlv(tmp_path_factory: pytest.TempPathFactory, go_binary: str, docker_client: Any) -> Path:
    """Delve as kodev builds it for the daemon's platform (`find_delve`, into a cache of this module's own:
    the first build compiles)."""
    # Module-scoped, so before the per-test fixture that gives marked tests the shell's GOPROXY back.
    wanted = {"KODEV_CACHE_DIR": str(tmp_path_factory.mktemp("delve-cache")), "GOPROXY": GOPROXY_OUTSIDE}
    saved = {key: os.environ.get(key) for key in wanted}
    for key, value in wanted.items():
        _set(key, value)
    try:
        built = find_delve(find_go(None, {}), from_daemon(docker_client.version(), docker_client.info()))
    finally:
        for key, value in saved.items():
            _set(key, value)
    version = subprocess.run([str(built), "version"], capture_output=True, text=True, check=True).stdout
    assert DELVE_VERSION.removeprefix("v") in version, version
    return built


def _set(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _debugged_module(tmp_path: Path, docker_client: Any) -> tuple[Module, Path, int, int]:
    """A one-file module whose service runs on the host network: (module, main.go, Delve's port, app's port)."""
    module = Module(tmp_path / "app", uuid.uuid4().hex[:8], docker_client)
    module.path.mkdir()
    (module.path / "go.mod").write_text(f"module {module.module_path}\n\ngo 1.21\n")
    source = module.path / "main.go"
    source.write_text(SOURCE % ("first", HELPER))
    (module.path / "kodata").mkdir()
    (module.path / "kodata" / "note.txt").write_text("one")
    delve_port, app_port = free_port(), free_port()
    (module.path / "kodev.toml").write_text(f'''repo = "{module.repo}"

[services.{module.name("dbg")}]
command = "."
args = ["127.0.0.1:{app_port}"]
network = "host"
delve = {delve_port}
''')
    return module, source, delve_port, app_port


@pytest.mark.parametrize("mode", ["mount", "copy-wait"])
def test_the_session_survives_saves_and_a_compile_error(tmp_path: Path, dlv: Path, docker_client: Any,
                                                        mode: str) -> None:
    module, source, delve_port, app_port = _debugged_module(tmp_path, docker_client)
    first = source.read_text()
    env = {"KODEV_DLV": str(dlv), **({"KODEV_SWAP_COPY": "1"} if mode == "copy-wait" else {})}
    args = ["debug", "--json", *(["--wait"] if mode == "copy-wait" else [])]
    with kodev_running(module, args, env) as (_proc, events):
        url = f"http://127.0.0.1:{app_port}/"
        ide: DelveClient | None = None
        try:
            listening = events.wait("debugger.listening", timeout=120)
            assert listening["service"] == module.name("dbg")
            assert listening["address"] == f"127.0.0.1:{delve_port}"
            ide = DelveClient.connect(listening["address"])
            if mode == "copy-wait":
                assert not _accepts(app_port), "--wait: the process must wait for the debugger's continue"
            else:  # kodev has let it run; a save before any debugger acts is restarted and runs on by itself
                _listening(app_port)
                mark = events.mark()
                source.write_text(SOURCE % ("early", HELPER))
                early = events.wait("debugger.restarted", since=mark)
                assert (early["discarded"], early["resumed"]) == ([], True), early
                wait_until(lambda: _body(url) == "early", 60, "the restarted process did not serve the new build")
                ide.call("Command", {"name": "halt"})  # an IDE halts it to set breakpoints, then continues it
            line, gone_line = _line(first, "// BREAK"), _line(first, "// GONE")
            kept = ide.call("CreateBreakpoint", {"Breakpoint": {"file": str(source), "line": line}})["Breakpoint"]
            ide.call("CreateBreakpoint", {"Breakpoint": {"file": str(source), "line": gone_line}})
            ide.send("Command", {"name": "continue"})
            _listening(app_port)
            _stops_with(ide, url, line, "early" if mode == "mount" else "first")

            # A save: the helper and its line go, the greeting changes; the same connection keeps debugging.
            mark = events.mark()
            second = SOURCE % ("second", "")
            assert _line(second, "// BREAK") == line
            source.write_text(second)
            restarted = events.wait("debugger.restarted", since=mark)
            assert restarted["discarded"] == [{"location": f"{source}:{gone_line}", "reason": restarted["discarded"][0][
                "reason"]}], restarted
            assert "could not find" in restarted["discarded"][0]["reason"]
            assert [e["how"] for e in events.all("delivered", since=mark)] == ["swapped"]
            # The IDE held the process: it saw kodev's halt end its continue; the new process waits for the IDE.
            assert restarted["resumed"] is False, restarted
            assert ide.call("State", {"NonBlocking": True})["State"]["Running"] is False
            assert not _accepts(app_port), "the restarted process must wait for the debugger that held it"
            ide.send("Command", {"name": "continue"})
            _listening(app_port)
            _stops_with(ide, url, line, "second")
            ide.call("Command", {"name": "halt"})  # Delve answers about breakpoints only while stopped, as IDEs know
            listed = ide.call("ListBreakpoints", {"All": False})["Breakpoints"]
            assert [(b["id"], b["file"], b["line"]) for b in listed if b["id"] > 0] == [(kept["id"], str(source), line)]
            ide.send("Command", {"name": "continue"})

            if mode == "mount":  # a compile error: the debugged process and the session stay as they were
                mark = events.mark()
                source.write_text(second.replace("fmt.Fprintln(w, greeting)", "fmt.Fprintln(w, greeting"))
                events.wait("build.failed", since=mark)
                _stops_with(ide, url, line, "second")
                assert not events.all("debugger.restarted", since=mark) and not events.all("delivered", since=mark)
        finally:
            if ide is not None:
                with contextlib.suppress(DelveRPCError):
                    ide.close()


def test_delves_own_terminal_client_keeps_its_session_across_a_save(tmp_path: Path, dlv: Path,
                                                                   docker_client: Any) -> None:
    """`dlv connect` on a pty, typed at as a person does, under `kodev debug --wait`: break, continue, print;
    a save; continue, print again — one terminal session, never reconnected."""
    module, source, _, app_port = _debugged_module(tmp_path, docker_client)
    line = _line(source.read_text(), "// BREAK")
    with kodev_running(module, ["debug", "--json", "--wait"], {"KODEV_DLV": str(dlv)}) as (_proc, events):
        url = f"http://127.0.0.1:{app_port}/"
        terminal: pexpect.spawn[str] | None = None
        try:
            listening = events.wait("debugger.listening", timeout=120)
            terminal = pexpect.spawn(str(dlv), ["connect", listening["address"]], encoding="utf-8", timeout=60,
                                     dimensions=(50, 160), env={**os.environ, "TERM": "dumb"})
            terminal.expect(r"\(dlv\) ")
            terminal.sendline(f"break {source}:{line}")
            terminal.expect(r"Breakpoint 1 set at .*main\.go:\d+")
            terminal.sendline("continue")
            _listening(app_port)
            answers: list[str] = []
            request = _get(url, answers)
            terminal.expect(rf"main\.go:{line} \(hits goroutine")
            terminal.expect(r"\(dlv\) ")
            terminal.sendline("print greeting")
            terminal.expect(r'"first"')
            terminal.sendline("continue")
            request.join(30)
            assert answers == ["first"]

            mark = events.mark()
            source.write_text(SOURCE % ("second", ""))
            restarted = events.wait("debugger.restarted", since=mark)
            assert restarted["resumed"] is False, restarted  # the terminal's continue held it
            terminal.expect(r"\(dlv\) ")  # kodev's halt answered the terminal's continue
            terminal.sendline("continue")
            _listening(app_port)
            request = _get(url, answers)
            terminal.expect(rf"main\.go:{line} \(hits goroutine")
            terminal.expect(r"\(dlv\) ")
            terminal.sendline("print greeting")
            terminal.expect(r'"second"')
            terminal.sendline("breakpoints")
            terminal.expect(rf"Breakpoint 1 .*main\.go:{line}")
            terminal.sendline("continue")
            request.join(30)
            assert answers == ["first", "second"]
        except BaseException:
            if terminal is not None:
                print("--- dlv connect\n", terminal.before)
            raise
        finally:
            if terminal is not None:
                terminal.close(force=True)


def test_kodata_goes_in_place_and_a_config_change_recreates_under_a_new_delve(tmp_path: Path, dlv: Path,
                                                                              docker_client: Any) -> None:
    """A kodata edit goes in as a swap puts it and Delve restarts the process (the session is kept). What a
    swap cannot carry (here an env change in kodev.toml) recreates the container: its Delve goes with it, a
    new one listens at the same address (announced again) and the app runs on the new settings."""
    module, source, delve_port, app_port = _debugged_module(tmp_path, docker_client)
    with kodev_running(module, ["debug", "--json"], {"KODEV_DLV": str(dlv)}) as (_proc, events):
        first = events.wait("debugger.listening", timeout=120)
        _listening(app_port)
        (debugged,) = docker_client.containers.list(filters={"label": f"dev.kodev.service={module.name('dbg')}"})
        assert debugged.attrs["HostConfig"]["CapAdd"] is None  # no held ports under Delve: nothing is added
        note_url = f"http://127.0.0.1:{app_port}/note"
        assert _body(note_url) == "one"
        mark = events.mark()
        (module.path / "kodata" / "note.txt").write_text("two")
        restarted = events.wait("debugger.restarted", since=mark)
        assert restarted["resumed"] is True and [e["how"] for e in events.all("delivered", since=mark)] == [
            "swapped"]
        wait_until(lambda: _body(note_url) == "two", 60, "the new kodata file is not served")
        assert not events.all("debugger.listening", since=mark), "the kodata edit must keep the same Delve"
        # The app exits on its own: Delve stays, and the next save starts it again, running (nobody held it).
        _body(f"http://127.0.0.1:{app_port}/exit")
        wait_until(lambda: not _accepts(app_port), 30, "the app did not exit")
        mark = events.mark()
        source.write_text(SOURCE % ("after exit", HELPER))
        assert events.wait("debugger.restarted", since=mark)["resumed"] is True
        wait_until(lambda: _body(f"http://127.0.0.1:{app_port}/") == "after exit", 60, "not started again")
        mark = events.mark()
        mark = events.mark()
        config = module.path / "kodev.toml"
        config.write_text(config.read_text() + 'env = ["GREETING_STYLE=plain"]\n')
        again = events.wait("debugger.listening", since=mark, timeout=120)
        assert again["address"] == first["address"] == f"127.0.0.1:{delve_port}"
        assert [e["how"] for e in events.all("delivered", since=mark)] == ["recreated"]
        ide = DelveClient.connect(again["address"])
        try:
            assert ide.call("GetVersion", {})["DelveVersion"]
        finally:
            ide.close()
        _listening(app_port)  # kodev let the new process run: no debugger had touched it
