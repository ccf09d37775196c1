"""`kodev debug` on a daemon that refuses ptrace: a clear warning naming the cause, at once, and kodev keeps
watching.

The daemon here allows ptrace (Docker's default seccomp profile does), and no kodev setting can make it
refuse, so Delve is replaced by a FAKE for this one fault: a static Go program that fails as Delve fails
when ptrace is refused (its message, exit code 1). Everything else is real: Go, the daemon, the supervisor.
Standard library only, offline.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.integration.modules import Module, kodev_running
from tests.integration.process import free_port

REFUSED = "could not launch process: fork/exec /kodev/-bin: operation not permitted"
FAKE_DELVE = f"""package main

import (
	"fmt"
	"os"
)

// Fails as Delve does when the daemon refuses ptrace.
func main() {{
	fmt.Fprintln(os.Stderr, "{REFUSED}")
	os.Exit(1)
}}
"""


def _fake_delve(directory: Path, go: str) -> Path:
    directory.mkdir()
    (directory / "go.mod").write_text("module fakedelve\n\ngo 1.21\n")
    (directory / "main.go").write_text(FAKE_DELVE)
    built = directory / "dlv"
    subprocess.run([go, "build", "-o", str(built), "."], cwd=directory, check=True, capture_output=True,
                   env={**os.environ, "CGO_ENABLED": "0"})
    return built


def test_a_refused_ptrace_is_a_clear_warning_and_the_watch_goes_on(tmp_path: Path, go_binary: str,
                                                                   docker_client: Any) -> None:
    fake = _fake_delve(tmp_path / "fake-delve", go_binary)
    module = Module(tmp_path / "app", uuid.uuid4().hex[:8], docker_client)
    module.path.mkdir()
    (module.path / "go.mod").write_text(f"module {module.module_path}\n\ngo 1.21\n")
    (module.path / "main.go").write_text("package main\n\nfunc main() { select {} }\n")
    (module.path / "kodev.toml").write_text(f'''repo = "{module.repo}"

[services.{module.name("dbg")}]
command = "."
network = "host"
delve = {free_port()}
''')
    with kodev_running(module, ["debug", "--json"], {"KODEV_DLV": str(fake)}) as (_proc, events):
        warning = events.wait("message", match=lambda e: "ptrace" in e["text"], timeout=120)
        assert warning["level"] == "warning"
        assert REFUSED in warning["text"] and module.name("dbg") in warning["text"], warning
        assert not events.all("debugger.listening"), "no Delve listens: none may be announced"
        exited = events.wait("service.exited")
        assert exited["code"] == 1 and any(REFUSED in line for line in exited["last_lines"]), exited
        events.wait("watching")
