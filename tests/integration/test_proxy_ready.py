"""Issue 22: when the dev proxy says the new code serves. With `ready` (here `kodev run -w --ready`), the
port accepting is not enough: the reload comes once that path answers 2xx (the app answers 503 for its first
400 ms). The old process shuts down gracefully (the proxy's sentinel connection never holds it up). A
kodata-only change reloads too. Also: the proxy configured by `kodev run`'s flags."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

from tests.integration.modules import kodev_running
from tests.integration.proxy_app import proxied_app


def _status(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_run_watch_with_a_ready_path_reloads_only_once_it_answers(tmp_path: Path, docker_client: Any) -> None:
    app = proxied_app(tmp_path, docker_client)
    app.config.unlink()  # flags only
    args = ["run", "--json", "-w", "--network", "host", "--name", app.service, "--proxy", str(app.proxy_port),
            "--upstream", f"127.0.0.1:{app.app_port}", "--ready", "/ready", ".", "--", f"127.0.0.1:{app.app_port}"]
    with kodev_running(app.module, args) as (_proc, events):
        listening = events.wait("proxy.listening", timeout=120)
        assert listening["address"] == f"127.0.0.1:{app.proxy_port}"
        events.wait("watching", timeout=120)
        # The first start's reload comes once /ready answers, which can be after `watching`: waited for here,
        # so that each save below is matched with its own reload.
        events.wait("proxy.reload", timeout=120)
        assert _status(app.proxy_port, "/text") == (200, b"v0")
        for version in ("v1", "v2"):
            mark = events.mark()
            app.set_version(version)
            events.wait("proxy.reload", since=mark, timeout=120)
            # The old process shut down gracefully: the proxy's sentinel did not hold it up until its kill.
            events.wait("service.log", since=mark, match=lambda e: e["line"] == "graceful exit")
            # Said only once the ready path answered: the new process, past its warm-up.
            assert _status(app.app_port, "/ready") == (200, b"ready")
            assert _status(app.app_port, "/text") == (200, version.encode())
        mark = events.mark()
        (app.module.path / "kodata" / "note.txt").write_text("second note")
        events.wait("proxy.reload", since=mark, timeout=120)
        assert [e["how"] for e in events.all("delivered", since=mark)] == ["swapped"]
        status, page = _status(app.proxy_port, "/note")
        assert status == 200 and b"<p id=note>second note</p>" in page and b"data-kodev-live" in page
