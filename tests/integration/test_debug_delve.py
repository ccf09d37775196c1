"""Issue 21, the mechanism `kodev debug` rests on, with a real Delve built as kodev builds it: a debugging
session survives a new binary. An IDE-like client stays connected to a headless `--accept-multiclient` Delve
while kodev, as a second client, restarts the target on a rebuilt binary renamed onto the same path
(`DelveClient.restart`): the IDE's breakpoint is still set and stops the next request, a local variable
shows the new value, and a breakpoint whose line the edit removed comes back as discarded.

Delve runs in a real container, under kodev's supervisor as PID 1 (the kodev debug command around it is the
next step). The IDE's side speaks Delve's
JSON-RPC through kodev's transport (`DelveClient.call`), with methods kodev itself never sends
(CreateBreakpoint, State, Eval, ListBreakpoints). Marked `module_proxy`: Delve is downloaded and built.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from kodev.debug.delve import DELVE_VERSION, find_delve
from kodev.debug.rpc import DelveClient, DelveRPCError
from kodev.deliver.supervision import SUPERVISOR, build_supervisor
from kodev.gobuild import BuildRequest, compile_commands, for_debugging
from kodev.gomod import resolve_commands
from kodev.gotool import find_go
from tests.conftest import GOPROXY_OUTSIDE
from tests.integration.conftest import run_kodev
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


def _build(go: str, module: Path, binary: Path, greeting: str, helper: str) -> str:
    """Write main.go, build it with kodev's debug settings (`for_debugging`: no -trimpath, -N -l, DWARF kept),
    and rename the binary onto `binary`, as a swap does."""
    text = SOURCE % (greeting, helper)
    (module / "main.go").write_text(text)
    tool = find_go(go, {})
    [command] = resolve_commands(tool, ["."], module)
    out = binary.parent / ".build"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    [built] = compile_commands(tool, [for_debugging(BuildRequest(command, ldflags=("-s", "-w")))], out)
    shutil.copyfile(built.path, binary.with_name(binary.name + ".new"))
    binary.with_name(binary.name + ".new").chmod(0o555)
    os.replace(binary.with_name(binary.name + ".new"), binary)
    return text


def _get(url: str, into: list[str]) -> threading.Thread:
    def fetch() -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            into.append(response.read().decode().strip())

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    return thread


def _listening(port: int) -> None:
    """Wait until the app accepts connections (Delve starts it, then it starts listening)."""
    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(accepts, 60, f"nothing listens on 127.0.0.1:{port}")


def _stopped_at(ide: DelveClient, line: int) -> dict[str, Any]:
    state: dict[str, Any] = {}

    def stopped() -> bool:
        state.update(ide.call("State", {"NonBlocking": True})["State"])
        thread = state.get("currentThread") or {}
        return not state.get("Running") and thread.get("line") == line

    wait_until(stopped, 60, lambda: f"the request did not stop at line {line}: {state}")
    return state


def _value(ide: DelveClient, expression: str) -> str:
    scope = {"GoroutineID": -1, "Frame": 0, "DeferredCall": 0}
    config = {"FollowPointers": True, "MaxVariableRecurse": 1, "MaxStringLen": 64, "MaxArrayValues": 64,
              "MaxStructFields": -1}
    return str(ide.call("Eval", {"Scope": scope, "Expr": expression, "Cfg": config})["Variable"]["value"])


@pytest.fixture(scope="module")
def dlv(tmp_path_factory: pytest.TempPathFactory, go_binary: str) -> Path:
    """Delve as kodev builds it (a cache of this module's own: the first build compiles, later ones link)."""
    # Module-scoped, so before the per-test fixture that gives marked tests the shell's GOPROXY back.
    wanted = {"KODEV_CACHE_DIR": str(tmp_path_factory.mktemp("delve-cache")), "GOPROXY": GOPROXY_OUTSIDE}
    saved = {key: os.environ.get(key) for key in wanted}
    for key, value in wanted.items():
        _set(key, value)
    try:
        built = find_delve(find_go(None, {}))
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


def _module(tmp_path: Path) -> Path:
    module = tmp_path / "app"
    module.mkdir()
    (module / "go.mod").write_text("module example.com/debugged\n\ngo 1.21\n")
    return module


def _session_survives_a_new_binary(go: str, module: Path, binary: Path, delve_port: int, app_port: int) -> None:
    """The IDE's side and kodev's, against the Delve at `delve_port` debugging `binary` (built already,
    greeting "first", with the helper): the new binary is renamed onto `binary`, then kodev restarts it."""
    source = str(module / "main.go")
    first = (module / "main.go").read_text()
    url = f"http://127.0.0.1:{app_port}/"
    ide = DelveClient.connect(f"127.0.0.1:{delve_port}", timeout=60)
    try:
        # As an IDE does with a running target: halt, set the breakpoints, continue (Delve changes breakpoints
        # only while the process is stopped). Running: --continue has let it go, and it listens.
        _listening(app_port)
        ide.call("Command", {"name": "halt"})
        line = _line(first, "// BREAK")
        kept = ide.call("CreateBreakpoint", {"Breakpoint": {"file": source, "line": line}})["Breakpoint"]
        gone_line = _line(first, "// GONE")
        ide.call("CreateBreakpoint", {"Breakpoint": {"file": source, "line": gone_line}})
        ide.send("Command", {"name": "continue"})

        answers: list[str] = []
        request = _get(url, answers)
        _stopped_at(ide, line)
        assert _value(ide, "greeting") == "first"
        ide.send("Command", {"name": "continue"})  # answered at the next stop, whoever causes it
        request.join(30)
        assert answers == ["first"]

        second = _build(go, module, binary, "second", "")  # the helper, and its line, are gone
        assert _line(second, "// BREAK") == line
        kodev = DelveClient.connect(f"127.0.0.1:{delve_port}")
        try:
            restarted = kodev.restart()
        finally:
            kodev.close()
        assert [d.location for d in restarted.discarded] == [f"{source}:{gone_line}"], restarted
        assert "could not find" in restarted.discarded[0].reason, restarted

        _listening(app_port)  # the restarted process, on the new binary, running again
        request = _get(url, answers)
        _stopped_at(ide, line)  # the IDE's breakpoint, on its connection of before, never redone
        listed = ide.call("ListBreakpoints", {"All": False})["Breakpoints"]
        assert [(b["id"], b["file"], b["line"]) for b in listed if b["id"] > 0] == [(kept["id"], source, line)]
        assert _value(ide, "greeting") == "second"
        ide.send("Command", {"name": "continue"})
        request.join(30)
        assert answers == ["first", "second"]
    finally:
        with contextlib.suppress(DelveRPCError):  # gone already: the failure above is the one to see
            ide.send("Detach", {"Kill": True})
        ide.close()


def test_in_a_container_under_the_supervisor_a_restart_keeps_the_session(tmp_path: Path, go_binary: str,
                                                                        dlv: Path, docker_client: Any) -> None:
    """kodev's supervisor as PID 1 with -dlv: Delve runs the program from the bind-mounted path new binaries
    are renamed onto (as a swap does), under Docker's default seccomp profile and capabilities."""
    module = _module(tmp_path)
    mounted = tmp_path / "kodev"
    mounted.mkdir()
    _build(go_binary, module, mounted / "app", "first", HELPER)
    shutil.copyfile(build_supervisor(find_go(None, {})), mounted / SUPERVISOR)
    shutil.copyfile(dlv, mounted / "dlv")
    for name in (SUPERVISOR, "dlv"):
        (mounted / name).chmod(0o555)
    repo = f"kodev.test/dbg-{uuid.uuid4().hex[:10]}"
    (module / "kodev.toml").write_text(f'repo = "{repo}"\n')
    built = run_kodev(["build", "."], module)
    assert built.returncode == 0, built.stderr
    delve_port, app_port = free_port(), free_port()
    container = docker_client.containers.create(
        f"{repo}/debugged:latest", network_mode="host", stdin_open=True, labels={"dev.kodev.test": "debug"},
        volumes={str(mounted): {"bind": "/kodev", "mode": "ro"}},
        entrypoint=[f"/kodev/{SUPERVISOR}", "-bin", "/kodev/app", "-stdin", "-dlv", "/kodev/dlv",
                    "-dlv-listen", f"127.0.0.1:{delve_port}", "--", "/ko-app/debugged", f"127.0.0.1:{app_port}"])
    try:
        container.start()
        _session_survives_a_new_binary(go_binary, module, mounted / "app", delve_port, app_port)
    except BaseException:
        print(container.logs().decode(errors="replace"))  # Delve's and the supervisor's word, on failure
        raise
    finally:
        container.remove(force=True)
        docker_client.images.remove(f"{repo}/debugged:latest", force=True)
