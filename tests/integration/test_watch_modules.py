"""`kodev watch` beyond the main module: go.work members and local `replace` targets are watched too.

Two tiny standard-library modules in a temp dir: `app` (a server command) uses a package of `lib`, once
through a go.work workspace and once through `replace example.com/lib => ../lib`. Editing lib's package
must rebuild the app and serve the new text. kodev runs with --json: the test reads its events.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.json_events import Events
from tests.integration.process import KodevProcess, free_port, wait_for_page

SERVER = '''package main

import (
	"flag"
	"fmt"
	"net/http"

	"example.com/lib/greet"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, greet.Text()) })
	panic(http.ListenAndServe(*addr, nil))
}
'''
GREET = 'package greet\n\n// Text is what the app serves.\nfunc Text() string { return "%s" }\n'


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _layout(root: Path, how: str, repo: str, port: int, service: str) -> Path:
    app, lib = root / "app", root / "lib"
    _write(lib / "go.mod", "module example.com/lib\n\ngo 1.22\n")
    _write(lib / "greet" / "greet.go", GREET % "from lib, first")
    app_mod = "module example.com/app\n\ngo 1.22\n"
    if how == "replace":
        app_mod += "\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n"
    else:
        _write(root / "go.work", "go 1.22\n\nuse (\n\t./app\n\t./lib\n)\n")
    _write(app / "go.mod", app_mod)
    _write(app / "cmd" / "server" / "main.go", SERVER)
    _write(app / "kodev.toml", f'repo = "{repo}"\n\n[services.{service}]\ncommand = "./cmd/server"\n'
                               f'args = ["-addr", "127.0.0.1:{port}"]\nnetwork = "host"\n')
    return app


@pytest.mark.parametrize("how", ["workspace", "replace"])
def test_edit_in_another_local_module_rebuilds_the_app(how: str, tmp_path: Path, repo: str, go_binary: str,
                                                       docker_client: Any) -> None:
    port, service = free_port(), f"mods-{uuid.uuid4().hex[:8]}"
    app = _layout(tmp_path, how, repo, port, service)
    proc = KodevProcess(["watch", "--json"], app, env={"GOPROXY": "off"})
    events = Events(proc)
    try:
        watching = events.wait("watching", timeout=120)
        assert str(tmp_path / "lib") in watching["roots"], watching
        wait_for_page(f"http://127.0.0.1:{port}/", "from lib, first", timeout=30)
        mark = events.mark()
        (tmp_path / "lib" / "greet" / "greet.go").write_text(GREET % "from lib, edited")
        events.wait("command.result", mark, lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt",
                    timeout=90)
        wait_for_page(f"http://127.0.0.1:{port}/", "from lib, edited", timeout=30)
        if how == "workspace":  # go.work sits above both modules: kodev watches the file itself
            work = tmp_path / "go.work"
            mark = events.mark()
            work.write_text(work.read_text() + "// edited\n")
            events.wait("changes", mark, lambda e: any(f["path"].endswith("go.work") for f in e["files"]), timeout=30)
            events.wait("command.result", mark,  # rebuilt; the same binary
                        lambda e: e["command"].endswith("server") and e["outcome"] == "unchanged", timeout=90)
        assert "Traceback" not in "\n".join(proc.err_lines()), proc.output()
        assert events.fatal() == [], proc.output()
        assert proc.stop(signal.SIGINT) == 0, proc.output()
    finally:
        proc.kill()
        for found in docker_client.api.containers(all=True, filters={"name": service}):
            docker_client.api.remove_container(found["Id"], force=True)
