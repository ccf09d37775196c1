"""Scenario 8: a burst of saves, and a kodata-only edit — the two gaps of issue 20, for kodev watch.

A burst is 30 saves of `cmd/server/main.go` in one second (an editor's auto-save, a formatter on save), each
with a fresh token; it is timed from the burst's last write until the page serves the last token, and set
against a single save timed the same way, alternately (A B A B …). A kodata-only edit appends a token to
`cmd/server/kodata/index.html`; it is timed from the write to serving, with a client connecting every 2 ms
meanwhile: the longest run of refused connections.
"""

from __future__ import annotations

import time

from bench.contenders import PAUSE, KodevServer, rounds
from bench.context import Context
from bench.measure import BenchError, Series, median, pair_differences, wait_for_text
from bench.results import ScenarioResult, Target, millis, series_table
from bench.swap import RefusedWindow

BURST_SAVES = 30
BURST_SECONDS = 1.0
BURST_SLACK = 0.1  # the target: served within one single-save time + 100 ms of the burst's end
KODATA_PAGE = "cmd/server/kodata/index.html"


def _burst(server: KodevServer, token: str) -> float:
    """30 saves in one second; seconds from the last write until its token serves."""
    started = time.monotonic()
    last = started
    for n in range(BURST_SAVES):
        server.edit(f"{token}-{n}")
        last = time.monotonic()
        pause = started + (n + 1) * BURST_SECONDS / BURST_SAVES - time.monotonic()
        if pause > 0 and n < BURST_SAVES - 1:
            time.sleep(pause)
    try:
        return wait_for_text(server.port, f"{token}-{BURST_SAVES - 1} ", timeout=120) - last
    except BenchError as exc:
        raise BenchError(f"{exc}\nkodev watch printed:\n{server.process.tail() if server.process else ''}") from None


def _kodata_edit(server: KodevServer, token: str) -> tuple[float, float]:
    """Append `token` to the kodata page: (seconds to serving it, longest refused run)."""
    page = server.module / KODATA_PAGE
    with RefusedWindow(server.port) as window:
        time.sleep(0.05)
        started = time.monotonic()
        page.write_text(page.read_text() + f"\n<!-- {token} -->\n")
        served = wait_for_text(server.port, token, timeout=120) - started
        time.sleep(0.1)
    return served, window.longest


def bursts_and_kodata(context: Context) -> ScenarioResult:
    """Bursts of saves and kodata edits (kodev watch)"""
    result = ScenarioResult(
        8, "Bursts of saves and kodata edits (kodev watch)",
        f"{BURST_SAVES} saves of `cmd/server/main.go` in {BURST_SECONDS:.0f} s, each serving a fresh token, timed "
        "from the last write until the page serves the last token; alternately, a single save timed from its "
        "write (the same edit). Then a kodata-only edit (`cmd/server/kodata/index.html` gains a token), timed "
        "from the write to serving, with a client connecting every 2 ms: the longest run of refused "
        "connections. kodev watch with its defaults (swap).")
    server = KodevServer(context, "s8-kodev")
    single, burst, kodata = Series("single save"), Series("last save of a burst"), Series("kodata edit")
    refused: list[float] = []
    try:
        server.start()
        for index, counted in rounds(context):
            token = f"{context.uid}-b{index}"
            one, _ = server.measure(f"{token}-one")
            time.sleep(PAUSE)
            many = _burst(server, f"{token}-burst")
            time.sleep(PAUSE)
            served, window = _kodata_edit(server, f"{token}-kodata")
            time.sleep(PAUSE)
            context.log(f"scenario 8 round {index + 1}{'' if counted else ' (warm-up)'}: single {one:.3f}s, "
                        f"burst's last {many:.3f}s, kodata {served:.3f}s (refused {window * 1000:.0f} ms)")
            if counted:
                single.values.append(one)
                burst.values.append(many)
                kodata.values.append(served)
                refused.append(window)
    finally:
        server.stop()
    result.tables.append(series_table([single, burst, kodata]))
    over = median(pair_differences(burst, single))
    result.targets.append(Target(
        f"the last save of a {BURST_SAVES}-save burst served within one single save's time + "
        f"{BURST_SLACK * 1000:.0f} ms of the burst's end (median of the paired differences)",
        f"{millis(over)} over a single save", over == over and over <= BURST_SLACK))
    worst = max(refused) if refused else float("nan")
    result.targets.append(Target(
        "a kodata-only edit served with no refused connection (client connecting every 2 ms)",
        f"longest refused run {millis(median(refused) if refused else float('nan'))} median, {millis(worst)} worst",
        worst == worst and worst == 0.0))
    result.notes.append(
        "A kodata edit reaches the running container in place: the changed files are extracted over "
        "/var/run/ko and kodev's supervisor restarts the app (apps often read kodata once, at start); the "
        "refused run is that restart, as for a swapped binary (scenario 7).")
    return result
