"""`kodev watch` on a vendored module: vendored packages are dependencies like any other, and
`vendor/modules.txt` is a module file like go.mod. kodev runs with --json: the tests read its events.

The module is built offline: a standard-library-only fake dependency under `vendor/` with its
`modules.txt`, and go.mod's `require` matching its `## explicit` line (`-mod=vendor` is Go's default when
vendor/ exists). The server imports the vendored package; `other` (an image-only command) does not.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.json_events import Event, Events
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored, wait_for_page
from tests.integration.watch_support import short

DEP = "example.com/dep/greet"
SERVER = '''package main

import (
	"flag"
	"fmt"
	"net/http"

	"example.com/dep/greet"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, greet.Text()) })
	panic(http.ListenAndServe(*addr, nil))
}
'''
GREET = 'package greet\n\n// Text is what the server serves.\nfunc Text() string { return "%s" }\n'
ENV = {"GOFLAGS": "", "GOPROXY": "off"}  # vendored: Go must not need the network


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def require(app: Path, version: str) -> None:
    """go.mod requiring example.com/dep at `version`, as `go get` leaves it."""
    write(app / "go.mod", f"module example.com/app\n\ngo 1.22\n\nrequire example.com/dep {version}\n")


def vendor(app: Path, version: str, text: str) -> None:
    """vendor/ as `go mod vendor` writes it for `version`."""
    write(app / "vendor" / "modules.txt", f"# example.com/dep {version}\n## explicit; go 1.22\n{DEP}\n")
    write(app / "vendor" / "example.com" / "dep" / "greet" / "greet.go", GREET % text)


@dataclass
class Watched:
    """A running `kodev watch --json` on the vendored module: the process, its events, the page, the service."""

    proc: KodevProcess
    events: Events
    url: str
    service: str

    def results(self, command: str, outcome: str, since: int = 0) -> list[Event]:
        return self.events.all("command.result",
                               lambda e: short(e["command"]) == command and e["outcome"] == outcome, since)

    def wait_swapped(self, since: int) -> Event:
        """The server's next `command.result` after `since`: rebuilt, and swapped into its container."""
        result = self.events.wait("command.result", since,
                                  lambda e: short(e["command"]) == "server" and e["outcome"] == "rebuilt", timeout=90)
        assert [(d["service"], d["how"]) for d in result["delivered"]] == [(self.service, "swapped")], result
        return result


@pytest.fixture
def watched(tmp_path: Path, repo: str, go_binary: str, docker_client: Any) -> Iterator[Watched]:
    """`kodev watch --json` on the vendored module, serving "vendored v1"."""
    app, port, service = tmp_path / "app", free_port(), f"vend-{uuid.uuid4().hex[:8]}"
    require(app, "v1.0.0")
    vendor(app, "v1.0.0", "vendored v1")
    write(app / "cmd" / "server" / "main.go", SERVER)
    write(app / "cmd" / "other" / "main.go", 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("other") }\n')
    write(app / "kodev.toml", f'repo = "{repo}"\n\n[services.{service}]\ncommand = "./cmd/server"\n'
                              f'args = ["-addr", "127.0.0.1:{port}"]\nnetwork = "host"\nstop_timeout = 3\n\n'
                              '[commands."./cmd/other"]\n')
    with sigint_not_ignored():
        proc = KodevProcess(["watch", "--json"], app, env=ENV)
    session = Watched(proc, Events(proc), f"http://127.0.0.1:{port}/", service)
    try:
        session.events.wait("watching", timeout=120)
        wait_for_page(session.url, "vendored v1", timeout=30)
        yield session
        assert "Traceback" not in "\n".join(proc.err_lines()), proc.output()
        assert session.events.fatal() == [], proc.output()
        assert proc.stop(signal.SIGINT) == 0, proc.output()
    finally:
        proc.kill()
        for found in docker_client.api.containers(all=True, filters={"name": service}):
            docker_client.api.remove_container(found["Id"], force=True)


def _container(client: Any, service: str) -> str:
    return str(client.api.containers(filters={"label": f"dev.kodev.service={service}"})[0]["Id"])


def test_vendored_edit_rebuilds_exactly_its_dependents(watched: Watched, tmp_path: Path, docker_client: Any) -> None:
    w = watched
    assert len(w.results("other", "built")) == 1, w.proc.output()
    old = _container(docker_client, w.service)
    mark = w.events.mark()
    write(tmp_path / "app" / "vendor" / "example.com" / "dep" / "greet" / "greet.go", GREET % "vendored edit")
    w.wait_swapped(mark)
    wait_for_page(w.url, "vendored edit", timeout=30)
    assert _container(docker_client, w.service) == old, "a binary-only change recreated the container"
    changes = [(e["files"], e["commands"]) for e in w.events.all("changes")]
    assert changes == [([{"path": "vendor/example.com/dep/greet/greet.go", "change": "modified"}], ["server"])], \
        w.proc.output()
    # `other` does not import the package: it would have been published in the same round, before server.
    assert [e for e in w.events.all("command.result") if short(e["command"]) == "other"] == \
        w.results("other", "built"), w.proc.output()


def test_a_dependency_bump_recovers_once_vendor_is_updated(watched: Watched, tmp_path: Path,
                                                           docker_client: Any) -> None:
    """`go get` bumps go.mod: Go refuses the stale vendor/ and the old container keeps serving; then
    `go mod vendor` writes modules.txt and the new sources: the next round rebuilds and serves them."""
    w = watched
    app = tmp_path / "app"
    old = _container(docker_client, w.service)
    mark = w.events.mark()
    require(app, "v1.1.0")
    error = w.events.wait("error", mark, lambda e: "inconsistent vendoring" in e["message"], timeout=90)
    assert error["fatal"] is False, error
    w.events.wait("message", mark, lambda e: e["level"] == "warning"
                  and e["text"].startswith("the running containers keep the last good build"), timeout=90)
    events = w.events.all(since=mark)
    changed = next(i for i, e in enumerate(events)
                   if e["event"] == "changes" and "go.mod" in [f["path"] for f in e["files"]])
    assert events[changed]["commands"] == [], events[changed]  # the package graph failed to load
    assert changed < events.index(error), "the go list error must follow the change it belongs to"
    assert _container(docker_client, w.service) == old
    wait_for_page(w.url, "vendored v1", timeout=5)

    mark = w.events.mark()
    vendor(app, "v1.1.0", "vendored v1.1")
    w.wait_swapped(mark)
    wait_for_page(w.url, "vendored v1.1", timeout=30)
    assert _container(docker_client, w.service) == old, "a binary-only change recreated the container"
    assert any("vendor/modules.txt" in [f["path"] for f in e["files"]] for e in w.events.all("changes", since=mark)), \
        w.proc.output()
