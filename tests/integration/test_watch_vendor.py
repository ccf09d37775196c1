"""`kodev watch` on a vendored module: vendored packages are dependencies like any other, and
`vendor/modules.txt` is a module file like go.mod.

The module is built offline: a standard-library-only fake dependency under `vendor/` with its
`modules.txt`, and go.mod's `require` matching its `## explicit` line (`-mod=vendor` is Go's default when
vendor/ exists). The server imports the vendored package; `other` (an image-only command) does not.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.process import KodevProcess, free_port, sigint_not_ignored, wait_for_page

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




@pytest.fixture
def watched(tmp_path: Path, repo: str, go_binary: str, docker_client: Any) -> Iterator[tuple[KodevProcess, str, str]]:
    """`kodev watch` on the vendored module, serving "vendored v1": (process, page URL, service)."""
    app, port, service = tmp_path / "app", free_port(), f"vend-{uuid.uuid4().hex[:8]}"
    require(app, "v1.0.0")
    vendor(app, "v1.0.0", "vendored v1")
    write(app / "cmd" / "server" / "main.go", SERVER)
    write(app / "cmd" / "other" / "main.go", 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("other") }\n')
    write(app / "kodev.toml", f'repo = "{repo}"\n\n[services.{service}]\ncommand = "./cmd/server"\n'
                              f'args = ["-addr", "127.0.0.1:{port}"]\nnetwork = "host"\nstop_timeout = 3\n\n'
                              '[commands."./cmd/other"]\n')
    with sigint_not_ignored():
        proc = KodevProcess(["watch"], app, env=ENV)
    url = f"http://127.0.0.1:{port}/"
    try:
        proc.wait_for(r"^watching ", timeout=120)
        wait_for_page(url, "vendored v1", timeout=30)
        yield proc, url, service
        assert "Traceback" not in proc.output(), proc.output()
        assert proc.stop(signal.SIGINT) == 0, proc.output()
    finally:
        proc.kill()
        for found in docker_client.api.containers(all=True, filters={"name": service}):
            docker_client.api.remove_container(found["Id"], force=True)


def _container(client: Any, service: str) -> str:
    return str(client.api.containers(filters={"label": f"dev.kodev.service={service}"})[0]["Id"])


def test_vendored_edit_rebuilds_exactly_its_dependents(watched: tuple[KodevProcess, str, str], tmp_path: Path,
                                                       docker_client: Any) -> None:
    proc, url, service = watched
    assert proc.count(r"^\s+other\s+built in ") == 1, proc.output()
    old = _container(docker_client, service)
    write(tmp_path / "app" / "vendor" / "example.com" / "dep" / "greet" / "greet.go", GREET % "vendored edit")
    proc.wait_for(r"^\s+server\s+rebuilt in .*\bswap [\d.]+s", timeout=90)
    wait_for_page(url, "vendored edit", timeout=30)
    assert _container(docker_client, service) == old, "a binary-only change recreated the container"
    changed = [line for line in proc.err_lines() if line.startswith("changed: ")]
    assert changed == ["changed: vendor/example.com/dep/greet/greet.go"], proc.output()
    # `other` does not import the package: it would have been published in the same round, before server.
    assert proc.count(r"^\s+other\s+(rebuilt in|unchanged)") == 0, proc.output()


def test_a_dependency_bump_recovers_once_vendor_is_updated(watched: tuple[KodevProcess, str, str],
                                                           tmp_path: Path, docker_client: Any) -> None:
    """`go get` bumps go.mod: Go refuses the stale vendor/ and the old container keeps serving; then
    `go mod vendor` writes modules.txt and the new sources: the next round rebuilds and serves them."""
    proc, url, service = watched
    app = tmp_path / "app"
    old = _container(docker_client, service)
    require(app, "v1.1.0")
    proc.wait_for(r"inconsistent vendoring", timeout=90)
    proc.wait_for(r"^warning: the running containers keep the last good build", timeout=90)
    lines = proc.err_lines()
    changed = next(i for i, line in enumerate(lines) if line.startswith("changed: go.mod"))
    assert changed < next(i for i, line in enumerate(lines) if "inconsistent vendoring" in line), \
        "the go list error must follow the change it belongs to"
    assert _container(docker_client, service) == old
    wait_for_page(url, "vendored v1", timeout=5)

    vendor(app, "v1.1.0", "vendored v1.1")
    proc.wait_for(r"^\s+server\s+rebuilt in .*\bswap [\d.]+s", timeout=90)
    wait_for_page(url, "vendored v1.1", timeout=30)
    assert _container(docker_client, service) == old, "a binary-only change recreated the container"
    assert any(line.startswith("changed: ") and "vendor/modules.txt" in line for line in proc.err_lines()), \
        proc.output()
