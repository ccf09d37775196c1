"""Issue 14 against real Go and Docker: the status line on a terminal (and never in a pipe), progress of a
cold `go build` of a generated 200-package module, and `--json` event streams checked against the schema.

kodev's stderr is a pty here (Python's `pty`), as a user's terminal is; stdout stays a pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.generate import generate
from kodev.jsonui import SCHEMA, check_event
from tests.integration.conftest import run_kodev
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored, wait_for_page

ERASE = "\x1b[2K"
SERVER_MAIN = "cmd/server/main.go"
SERVER_LINE = "\t\tfmt.Fprint(w, body)\n"
STATUS_COUNT = re.compile(r"go build (?P<names>[^·\r\n]+) · (?P<count>\d+)(?:/~\d+)? packages? ·")


@dataclass
class PtyRun:
    code: int
    terminal: str  # everything kodev wrote to its stderr, the terminal, escape sequences and all
    stdout: str


def run_on_pty(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> PtyRun:
    """`kodev ARGS` with stderr on a 120-column pty and stdout on a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "kodev", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave,
                               env={**os.environ, "TERM": "xterm-256color", **(env or {})})
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the pty
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            process.kill()
            raise AssertionError(f"kodev {args} did not finish in {timeout}s:\n{b''.join(chunks).decode()[-3000:]}")
        assert process.stdout is not None
        stdout = process.stdout.read().decode()
        return PtyRun(process.wait(timeout=30), b"".join(chunks).decode(errors="replace"), stdout)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every stdout line must be one schema-valid event."""
    events = []
    for line in text.splitlines():
        event = json.loads(line)
        check_event(event)
        events.append(event)
    return events


def core(events: list[dict[str, Any]]) -> list[str]:
    """The events whose order matters: not logs, free-form messages or progress ticks."""
    return [e["event"] for e in events
            if e["event"] not in ("service.log", "message", "build.progress", "build.learned")]




# --- the status line -----------------------------------------------------------------------------------

def test_status_line_on_a_terminal_and_not_in_a_pipe(hello: Path, repo: str) -> None:
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\nbase = "scratch"\n')
    on_tty = run_on_pty(["build", "./cmd/server", "./cmd/hello"], hello)
    assert on_tty.code == 0, on_tty.terminal
    assert on_tty.stdout.splitlines() == [f"{repo}/server:latest", f"{repo}/hello:latest"]
    assert re.search(r"\r\x1b\[2K. go build server, hello · ", on_tty.terminal), on_tty.terminal
    assert "Traceback" not in on_tty.terminal
    final = on_tty.terminal.rsplit("\n", 2)
    assert final[-1] == "" and "hello" in final[-2], "the last thing on the terminal is the result line"

    in_pipe = run_kodev(["build", "./cmd/server", "./cmd/hello"], hello)
    assert in_pipe.returncode == 0, in_pipe.stderr
    assert ERASE not in in_pipe.stderr and " · " not in in_pipe.stderr.replace("· ", ""), in_pipe.stderr
    assert not re.search(r"go build server, hello ·", in_pipe.stderr), in_pipe.stderr
    assert re.search(r"^  go build\s+server, hello \d+\.\d\ds$", in_pipe.stderr, re.M), in_pipe.stderr


def test_cold_build_of_a_200_package_module_shows_progress_moving(tmp_path: Path, go_binary: str, repo: str) -> None:
    """A module path of this test's own: none of the module's 200 packages is in Go's cache, so Go compiles
    every one of them. (The standard library comes from the cache the other tests share: compiling it again in
    a private, empty GOCACHE took ~50 s of CPU, the most of any test, for no more progress to see.)"""
    shape = generate(tmp_path / "gen", commands=2, packages=200, shared_by=1,
                     module=f"example.com/gen{uuid.uuid4().hex[:12]}")
    (shape.root / "kodev.toml").write_text(f'repo = "{repo}"\nbase = "scratch"\n')
    done = run_on_pty(["build", *shape.command_dirs], shape.root, timeout=600)
    assert done.code == 0, done.terminal[-3000:]
    counts = [int(m["count"]) for m in STATUS_COUNT.finditer(done.terminal)]
    assert counts == sorted(counts), "the count of compiled packages never goes back"
    assert len(set(counts)) >= 5, f"progress did not move: {sorted(set(counts))}"
    assert counts[-1] >= shape.packages, f"only {counts[-1]} packages seen compiling, the module alone has 200"
    assert done.terminal.endswith("\n"), "the status line is gone at the end"


# --- events --------------------------------------------------------------------------------------------

def test_a_failed_build_is_an_event_with_the_compilers_own_text(hello: Path, go_binary: str, repo: str) -> None:
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    main_go = hello / "cmd" / "hello" / "main.go"
    main_go.write_text(main_go.read_text() + "\nfunc broken() { _ = notDefinedAnywhere }\n")
    done = run_kodev(["build", "--json", "./cmd/hello"], hello)
    assert done.returncode == 1
    events = json_lines(done.stdout)
    assert core(events) == ["started", "build.started", "build.failed", "error", "exit"], events
    failed, error, end = events[-3:]
    own = subprocess.run([go_binary, "build", "-trimpath", "-o", os.devnull, "./cmd/hello"], cwd=hello,
                         capture_output=True, text=True, check=False, env={**os.environ, "CGO_ENABLED": "0"})
    assert own.returncode != 0
    assert failed["output"] == own.stderr, "exactly what `go build` prints, without -v's package lines"
    assert "undefined: notDefinedAnywhere" in failed["output"]
    assert error["kind"] == "CompileError" and error["fatal"] is True and error["message"] == failed["message"]
    assert end["code"] == 1


def test_run_json_carries_the_containers_output_and_exit_code(hello: Path, repo: str, docker_client: Any) -> None:
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    name = f"kodev-test-{uuid.uuid4().hex[:8]}"
    done = run_kodev(["run", "--json", "--name", name, "./cmd/hello", "--", "-exit", "3", "bob"], hello)
    assert done.returncode == 3, done.stdout + done.stderr
    events = json_lines(done.stdout)
    assert core(events)[:2] == ["started", "build.started"] and core(events)[-1] == "exit", events
    logs = [e for e in events if e["event"] == "service.log"]
    assert [(e["service"], e["stream"], e["line"]) for e in logs] == [(name, "stdout", "Hello, bob!")]
    assert events[-1]["code"] == 3


class JsonWatch:
    """`kodev watch --json` as a process: its stdout parsed into events as they come."""

    def __init__(self, module: Path) -> None:
        with sigint_not_ignored():
            self.proc = KodevProcess(["watch", "--json"], cwd=module)

    def events(self) -> list[dict[str, Any]]:
        return json_lines("\n".join(self.proc.out_lines()))

    def wait_for(self, event: str, count: int = 1, timeout: float = 120) -> None:
        self.proc.wait_for(rf'"event": "{re.escape(event)}"', count=count, timeout=timeout, stream="stdout")


def test_watch_json_sequence_for_a_rebuild_and_a_compile_error(hello: Path, repo: str, docker_client: Any,
                                                              delivery: str) -> None:
    port, service = free_port(), f"srv-{uuid.uuid4().hex[:8]}"
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n\n[services.{service}]\ncommand = "./cmd/server"\n'
                                      f'args = ["-addr", "127.0.0.1:{port}"]\nnetwork = "host"\nstop_timeout = 3\n')
    watch = JsonWatch(hello)
    try:
        watch.wait_for("watching")
        wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=60)
        startup = core(watch.events())
        assert startup == ["started", "graph.loaded", "build.started", "build.finished", "image.published",
                           "delivered", "command.result", "watching"], watch.proc.output()
        before = len(watch.events())

        main_go = hello / SERVER_MAIN
        source = main_go.read_text()
        main_go.write_text(source.replace(SERVER_LINE, '\t\tfmt.Fprint(w, body+"<!-- json -->")\n', 1))
        watch.wait_for("command.result", count=2)
        wait_for_page(f"http://127.0.0.1:{port}/", "<!-- json -->", timeout=60)
        rebuild = [e for e in watch.events()[before:] if e["event"] not in ("service.log", "message",
                                                                            "build.progress", "build.learned")]
        # One write can reach the watcher as two events (the truncate, then the bytes) far enough apart on a
        # loaded machine: the first round is then superseded by the second, as kodev documents. Only the
        # round that delivered is checked.
        while [e["event"] for e in rebuild[:3]] == ["changes", "build.started", "build.superseded"]:
            rebuild = rebuild[3:]
        names = [e["event"] for e in rebuild]
        if delivery == "swap":
            # The binary is swapped in before the image is loaded: `delivered` comes first, as it serves.
            assert names == ["changes", "build.started", "build.finished", "delivered", "image.published",
                             "command.result"], watch.proc.output()
            rebuild[3:5] = rebuild[4], rebuild[3]
        else:
            assert names == ["changes", "build.started", "build.finished", "image.published", "delivered",
                             "command.result"], watch.proc.output()
        changes, started, finished, published, delivered, result = rebuild
        assert changes["files"] == [{"path": SERVER_MAIN, "change": "modified"}] and changes["commands"] == ["server"]
        assert started["commands"] == ["server"] and started["estimate"] > 50
        assert published["ref"] == f"{repo}/server:latest" and published["bytes_sent"] > 0
        assert published["image_id"] == docker_client.api.inspect_image(published["ref"])["Id"]
        assert delivered["service"] == service
        assert delivered["how"] == ("swapped" if delivery == "swap" else "recreated"), delivered
        assert result["outcome"] == "rebuilt" and result["image_id"] == published["image_id"]
        assert result["total_seconds"] >= finished["seconds"] > 0
        assert any(e["event"] == "service.log" and e["service"] == service for e in watch.events())
        before = len(watch.events())

        main_go.write_text(source + "\nfunc broken() { _ = notDefinedAnywhere }\n")
        watch.wait_for("build.failed")
        # (build.learned: the learning of the save before, in the background, may end at any point here)
        failed = [e for e in watch.events()[before:]
                  if e["event"] not in ("service.log", "build.progress", "build.learned")]
        assert [e["event"] for e in failed][:5] == ["changes", "build.started", "build.failed", "error", "message"]
        assert "cmd/server/main.go" in failed[2]["output"] and "undefined: notDefinedAnywhere" in failed[2]["output"]
        assert failed[3]["fatal"] is False and failed[3]["output"] == failed[2]["output"]
        assert failed[4]["level"] == "warning" and "keep the last good build" in failed[4]["text"]
        wait_for_page(f"http://127.0.0.1:{port}/", "<!-- json -->", timeout=10)  # still serving

        assert watch.proc.stop(signal.SIGINT) == 0
        end = watch.events()
        assert end[-1]["event"] == "exit" and end[-1]["code"] == 0
        assert all(e["schema"] == SCHEMA for e in end)
        assert watch.proc.err_lines() == [], "with --json, stderr stays empty"
    finally:
        watch.proc.kill()
        for container in docker_client.containers.list(  # (ignore_removed: one may go while it is listed)
                all=True, filters={"label": f"dev.kodev.owner.pid={watch.proc.process.pid}"}, ignore_removed=True):
            with contextlib.suppress(Exception):
                container.remove(force=True)
