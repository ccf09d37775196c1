"""Issue 22 in a browser: headless Chromium (Debian's, through Playwright) on pages served through kodev's
dev proxy. A save reloads the page by itself, and at that moment the app, asked directly, already serves the
new text; a compile error shows the overlay with the compiler's message in every open tab, the fix removes
it; many tabs share one event stream (more tabs than a browser's six connections per host still reload).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request

from bench.browser import chromium, chromium_path
from tests.integration.conftest import _missing
from tests.integration.json_events import Events
from tests.integration.modules import kodev_running
from tests.integration.process import KodevProcess
from tests.integration.proxy_app import ProxiedApp, proxied_app


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        _missing("Chromium (Debian's chromium package)")
    assert path is not None
    with chromium(path) as launched:
        yield launched


@pytest.fixture
def watched(tmp_path: Path, docker_client: Any) -> Iterator[tuple[ProxiedApp, KodevProcess, Events]]:
    app = proxied_app(tmp_path, docker_client)
    with kodev_running(app.module, ["watch", "--json"]) as (proc, events):
        events.wait("proxy.listening", timeout=120)
        events.wait("watching", timeout=120)
        yield app, proc, events


def _direct(app: ProxiedApp) -> str:
    with urllib.request.urlopen(app.app_url("/text"), timeout=10) as answer:
        return str(answer.read().decode())


def _open(browser: Browser, app: ProxiedApp) -> Page:
    page = browser.new_page()
    page.goto(app.proxy_url("/"))
    assert page.inner_text("#v") == "v0"
    return page


def test_the_page_reloads_by_itself_when_the_new_code_serves(browser: Browser,
                                                             watched: tuple[ProxiedApp, KodevProcess, Events]) -> None:
    app, _, events = watched
    page = _open(browser, app)
    at_reload: list[str] = []

    def on_request(request: Request) -> None:  # the reload's own request for the page: the app, asked now
        if request.is_navigation_request() and request.frame == page.main_frame:
            at_reload.append(_direct(app))

    page.on("request", on_request)
    mark = events.mark()
    app.set_version("v1")
    page.wait_for_function("document.getElementById('v') && document.getElementById('v').textContent === 'v1'",
                           timeout=60_000)
    assert at_reload and at_reload[0] == "v1", f"the page reloaded before the new code served: {at_reload}"
    assert events.all("proxy.reload", since=mark)
    page.close()


def test_a_compile_error_shows_in_every_tab_and_the_fix_removes_it(
        browser: Browser, watched: tuple[ProxiedApp, KodevProcess, Events]) -> None:
    app, _, events = watched
    tabs = [_open(browser, app) for _ in range(8)]  # more than a browser's 6 connections per host
    mark = events.mark()
    app.set_version("v1", broken=True)
    events.wait("build.failed", since=mark, timeout=120)
    for tab in tabs:
        tab.wait_for_selector("#__kodev_overlay_output", timeout=30_000)
        shown = tab.inner_text("#__kodev_overlay_output")
        assert "undefined: undefinedThing" in shown and "main.go" in shown, shown
        assert tab.inner_text("#v") == "v0", "the page itself stays as it was"
    app.set_version("v1")
    for tab in tabs:
        tab.wait_for_function("document.getElementById('v') && document.getElementById('v').textContent === 'v1'",
                              timeout=60_000)
        assert tab.query_selector("#__kodev_overlay") is None
        tab.close()


def test_a_proxy_error_page_keeps_listening_and_reloads(browser: Browser, tmp_path: Path, docker_client: Any) -> None:
    """The app is not up when the page is asked (a compile error before its first build): the proxy's own
    page after `proxy_timeout` carries the script, and it reloads once the fixed app serves."""
    app = proxied_app(tmp_path, docker_client)
    app.set_version("v0", broken=True)
    app.write_config("proxy_timeout = 1\n")
    with kodev_running(app.module, ["watch", "--json"]) as (_proc, events):
        events.wait("build.failed", timeout=120)
        page = browser.new_page()
        answer = page.goto(app.proxy_url("/"))
        assert answer is not None and answer.status == 503
        page.wait_for_selector("#__kodev_overlay_output", timeout=30_000)  # the error, on the proxy's page too
        app.set_version("v1")
        page.wait_for_function("document.getElementById('v') && document.getElementById('v').textContent === 'v1'",
                               timeout=60_000)
        page.close()
