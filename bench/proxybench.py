"""Scenario 11: the dev proxy (issue 22) — save to the browser showing the new page, and refused requests
during a storm of rebuilds, through the proxy and straight to the app.

Two `kodev watch` on their own copies of examples/hello: one with `proxy`/`upstream` (a headless Chromium,
Debian's, holds its page open through the proxy), one without. Rounds alternate between them, the same
one-line edit each time. For the proxied one each round times the write to the app serving the token (a
direct poll, as scenario 1) and to the browser showing it (the page reloads by itself). Then the same saves
again, with 8 clients per server requesting the page back to back, through the proxy for one and straight to
the app for the other, counting refused connections and 5xx answers.
"""

from __future__ import annotations

import http.client
import threading
import time

from bench.contenders import PAUSE, KodevServer, rounds
from bench.context import Context
from bench.measure import BenchError, Series, free_port, median, wait_for_text
from bench.results import ScenarioResult, Table, Target, millis, series_table

CLIENTS = 8


class Storm:
    """`CLIENTS` threads asking 127.0.0.1:port for `/` back to back; what they got."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers = self.refused = self.server_errors = self.other_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Storm:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _client(self) -> None:
        while not self._stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request("GET", "/")
                status = connection.getresponse().status
                outcome = "server_errors" if status >= 500 else "answers"
            except ConnectionRefusedError:
                outcome = "refused"
            except (OSError, http.client.HTTPException):
                outcome = "other_errors"
            finally:
                connection.close()
            with self._lock:
                setattr(self, outcome, getattr(self, outcome) + 1)
            if outcome != "answers":
                time.sleep(0.001)  # a refused connect returns at once: do not spin


def proxy_reloads(context: Context) -> ScenarioResult:
    """Dev proxy: save → the browser shows the new page; refused requests during rebuilds"""
    from bench.browser import chromium, chromium_path

    result = ScenarioResult(
        11, "Dev proxy: save → the browser shows the new page; refused requests during rebuilds",
        "Two `kodev watch` on their own copies of examples/hello, one behind its dev proxy (`proxy` and "
        "`upstream` in kodev.toml), one without; rounds alternate, the same one-line edit of "
        "`cmd/server/main.go` each time. Headless Chromium (Debian's) keeps the proxied page open: the time "
        "from the write to the reloaded page's DOMContentLoaded (by the browser's clock; the page reloads by "
        "itself) is measured next to the time to "
        "the app serving it (a direct poll, as scenario 1), with nothing else running. Then the same saves again "
        "with 8 clients per server requesting `/` back to back, through the proxy for one, straight to the app "
        "for the other, counting refused connections and 5xx answers.")
    browser_path = chromium_path()
    if browser_path is None:
        raise BenchError("no chromium on PATH (Debian's chromium package): scenario 11 needs a browser")
    proxy_port = free_port()
    proxied = KodevServer(context, "s11-proxy", service_lines=(
        f'proxy = "127.0.0.1:{proxy_port}"\nupstream = "127.0.0.1:@PORT@"\n'))
    direct = KodevServer(context, "s11-direct")
    shown, served = Series("save → the reloaded page is ready (through the proxy)"), Series("save → the app serves it")
    storms: dict[str, Storm] = {}
    try:
        proxied.start()
        direct.start()
        with chromium(browser_path) as browser:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{proxy_port}/")
            # First the reload, on a quiet machine: the browser and the two servers alternate, nothing else.
            for index, counted in rounds(context):
                token = f"{context.uid}-s11-{index}"
                started, wall = time.monotonic(), time.time()
                proxied.edit(f"proxy-{token}")
                app_at = wait_for_text(proxied.port, f"proxy-{token}", timeout=120)
                page.wait_for_function(f"document.documentElement.outerHTML.includes('proxy-{token}')",
                                       timeout=120_000)
                # When the reloaded page's document was ready, by the browser's own clock (not when
                # Playwright's polling noticed it).
                ready_ms = page.evaluate("performance.timeOrigin + "
                                         "performance.getEntriesByType('navigation')[0].domContentLoadedEventStart")
                browser_at = started + (float(ready_ms) / 1000 - wall)
                time.sleep(PAUSE)
                direct.measure(f"direct-{token}")
                time.sleep(PAUSE)
                context.log(f"scenario 11 round {index + 1}{'' if counted else ' (warm-up)'}: served after "
                            f"{app_at - started:.3f}s, the browser showed it after {browser_at - started:.3f}s")
                if counted:
                    served.values.append(app_at - started)
                    shown.values.append(browser_at - started)
        # Then the storm: the same saves, alternating, with 8 clients on each server all along.
        with Storm(proxy_port) as through, Storm(direct.port) as straight:
            storms = {"through the proxy": through, "straight to the app (no proxy)": straight}
            for index, _ in rounds(context):
                token = f"{context.uid}-s11-storm-{index}"
                proxied.measure(f"proxy-{token}")
                time.sleep(PAUSE)
                direct.measure(f"direct-{token}")
                time.sleep(PAUSE)
    finally:
        proxied.stop()
        direct.stop()
    result.tables.append(series_table([shown, served]))
    lag = median([b - a for b, a in zip(shown.values, served.values, strict=True)])
    result.tables.append(Table(["storm (8 clients each, during the second run of rounds)", "answers", "refused", "5xx",
                                "other errors"],
                               [[name, str(s.answers), str(s.refused), str(s.server_errors), str(s.other_errors)]
                                for name, s in storms.items()]))
    result.tables.append(Table(["derived (medians)", "value"], [
        ["the reloaded page ready − the app serving it (per round)", millis(lag)],
    ]))
    proxy_storm = storms.get("through the proxy")
    failed = (proxy_storm.refused + proxy_storm.server_errors + proxy_storm.other_errors) if proxy_storm else 0
    result.targets.append(Target("requests through the dev proxy during rebuilds: 0 refused, 0 5xx, 0 errors",
                                 f"{failed} of {proxy_storm.answers + failed}" if proxy_storm else "not run",
                                 failed == 0 if proxy_storm else None))
    return result
