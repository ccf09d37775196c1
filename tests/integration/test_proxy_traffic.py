"""Issue 22: what passes through the dev proxy, and that a rebuild never refuses or loses a request.

Real Go, a real daemon, `kodev watch --json` with a service behind `proxy = …` (tests/integration/proxy_app.py):
bytes, headers, redirects, streams, compressed HTML, SSE and a WebSocket through the proxy; then a client
hammering it with GETs and POSTs, 20 at a time, across 20 swaps and 3 recreates.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.json_events import Events
from tests.integration.modules import kodev_running
from tests.integration.process import KodevProcess, wait_until
from tests.integration.proxy_app import ProxiedApp, proxied_app


@pytest.fixture
def watched(tmp_path: Path, docker_client: Any) -> Iterator[tuple[ProxiedApp, KodevProcess, Events]]:
    app = proxied_app(tmp_path, docker_client)
    with kodev_running(app.module, ["watch", "--json"]) as (proc, events):
        listening = events.wait("proxy.listening", timeout=120)
        assert listening == {**listening, "service": app.service, "address": f"127.0.0.1:{app.proxy_port}",
                             "upstream": f"127.0.0.1:{app.app_port}"}
        events.wait("watching", timeout=120)
        yield app, proc, events


def _get(port: int, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def _deliver(app: ProxiedApp, events: Events, version: str) -> None:
    """Save a new version and wait until the proxy says the new code serves."""
    mark = events.mark()
    app.set_version(version)
    events.wait("proxy.reload", since=mark, timeout=120)


def test_bytes_headers_redirects_streams_and_pages_pass_through(
        watched: tuple[ProxiedApp, KodevProcess, Events]) -> None:
    app, _, events = watched
    proxied = _get(app.proxy_port, "/json")  # held until the app serves: then its own port answers too
    direct = _get(app.app_port, "/json")
    assert proxied[0] == direct[0] == 200
    assert proxied[2] == direct[2] and "é\\u00e9".encode() in proxied[2]  # byte for byte
    assert proxied[1]["x-app"] == "kept" and proxied[1]["content-type"] == direct[1]["content-type"]

    body = b"a=1&b=\x00\xff" * 1000
    status, _, echoed = _get(app.proxy_port, "/echo?q=1", "POST", body, {"Content-Type": "application/x-binary"})
    assert (status, echoed) == (200, b"v0:POST:" + body)
    status, _, echoed = _get(app.proxy_port, "/echo", "PUT", b"put body")
    assert (status, echoed) == (200, b"v0:PUT:put body")

    status, headers, _ = _get(app.proxy_port, "/redirect")
    assert (status, headers["location"]) == (302, "/text"), "a redirect is the browser's to follow"
    status, _, streamed = _get(app.proxy_port, "/stream")
    assert (status, streamed) == (200, b"part 0 of v0\npart 1 of v0\npart 2 of v0\n")

    status, headers, page = _get(app.proxy_port, "/", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and page.count(b"data-kodev-live") == 1 and page.index(b"<script") < page.index(b"</body>")
    assert int(headers["content-length"]) == len(page)
    status, headers, page = _get(app.proxy_port, "/gzip", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers, "the page is sent decoded, with the script"
    assert b"<p id=g>v0</p>" in page and b"data-kodev-live" in page
    assert _get(app.app_port, "/gzip")[1]["content-encoding"] == "gzip"
    assert not events.all("proxy.held")


def _sse_lines(port: int, into: list[str], stop: threading.Event) -> None:
    """An EventSource's loop: read `data:` lines; when the stream ends, connect again (as browsers do)."""
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/sse", headers={"Accept": "text/event-stream"})
            answer = connection.getresponse()
            assert answer.status == 200, answer.status
            while not stop.is_set():
                line = answer.fp.readline()
                if not line:
                    break
                if line.startswith(b"data: "):
                    into.append(line[6:].decode().strip())
            connection.close()
        except (OSError, http.client.HTTPException):
            pass


async def _ws_echo(url: str, message: str) -> str:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
        await socket.send_str(message)
        answer = await socket.receive(timeout=30)
        return str(answer.data)


async def _ws_across(url: str, deliver: Callable[[], None]) -> list[str]:
    """Echo once, deliver a new version, and see the socket closed by the old process's end, as a page holding
    it would (the page then connects again)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
        await socket.send_str("before")
        first = str((await socket.receive(timeout=30)).data)
        await asyncio.to_thread(deliver)
        closing = await socket.receive(timeout=60)
    return [first, closing.type.name]


def test_sse_and_websockets_keep_working_across_a_restart(watched: tuple[ProxiedApp, KodevProcess, Events]) -> None:
    app, _, events = watched
    ws_url = f"ws://127.0.0.1:{app.proxy_port}/ws"
    assert asyncio.run(_ws_echo(ws_url, "hi")) == "v0:hi"
    lines: list[str] = []
    stop = threading.Event()
    reader = threading.Thread(target=_sse_lines, args=(app.proxy_port, lines, stop), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(lines) >= 3, 30, lambda: f"SSE through the proxy is not flowing: {lines}")
        held_socket = asyncio.run(_ws_across(ws_url, lambda: _deliver(app, events, "v1")))
        assert held_socket[0] == "v0:before" and held_socket[1] in ("CLOSE", "CLOSED", "CLOSING"), held_socket
        wait_until(lambda: any(line.startswith("v1-") for line in lines), 60,
                   lambda: f"the SSE client did not get the new process's events: {lines[-5:]}")
    finally:
        stop.set()
    assert all(line.startswith(("v0-", "v1-")) for line in lines)
    assert asyncio.run(_ws_echo(ws_url, "again")) == "v1:again", "a new WebSocket reaches the new process"


def _serves(app: ProxiedApp, version: str) -> Callable[[], bool]:
    return lambda: _get(app.app_port, "/text")[2] == version.encode()


def test_a_hammering_client_sees_no_refusal_and_no_5xx_across_20_swaps_and_3_recreates(
        watched: tuple[ProxiedApp, KodevProcess, Events]) -> None:
    app, _, events = watched
    versions = ["v0"]
    problems: list[str] = []
    seen: list[list[str]] = [[] for _ in range(20)]
    stop = threading.Event()

    def client(index: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            post = n % 2 == 0
            body = f"body-{index}-{n}".encode()
            sent = time.monotonic()
            try:
                status, _, answer = _get(app.proxy_port, "/echo" if post else "/text", "POST" if post else "GET",
                                         body if post else None)
            except ConnectionRefusedError as exc:
                problems.append(f"refused: {exc}")
                continue
            except OSError as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            text = answer.decode()
            version = text.split(":", 1)[0]
            if status >= 500:  # the proxy's own page: what it says, and how long the request waited
                detail = re.search(r"<p>(.*?)</p>", text)
                problems.append(f"{status} after {time.monotonic() - sent:.1f}s: "
                                f"{detail.group(1) if detail else text[:200]}")
            elif post and text != f"{version}:POST:{body.decode()}":
                problems.append(f"a POST lost its body: {text[:200]}")
            elif version not in versions:
                problems.append(f"an answer from no version kodev delivered: {text[:200]}")
            else:
                seen[index].append(version)

    clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(20)]
    for thread in clients:
        thread.start()
    try:
        for round_number in range(23):
            version = f"v{round_number + 1}"
            versions.append(version)
            if round_number in (7, 14, 21):  # a recreate: kodev.toml changes the container's environment
                mark = events.mark()
                app.write_config(f'env = ["ROUND={round_number}"]\n')
                app.set_version(version)
                events.wait("proxy.reload", since=mark, timeout=120)
                wait_until(_serves(app, version), 60, "the recreate")
            else:
                _deliver(app, events, version)
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)
    assert problems == [], problems[:20]
    order = {v: i for i, v in enumerate(versions)}
    for answers in seen:
        assert answers, "every client got answers"
        ranks = [order[v] for v in answers]
        assert ranks == sorted(ranks), "a client saw an older version after a newer one"
    how = [e["how"] for e in events.all("delivered")]
    assert how.count("swapped") >= 20 and how.count("recreated") >= 3, how
    assert sum(e["count"] for e in events.all("proxy.held")) > 0, "requests came during rebuilds: some waited"
