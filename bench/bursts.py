"""Scenario 8: a burst of saves, and a kodata-only edit — two gaps of issue 20, for kodev watch and the rivals.

A burst is 30 saves of `cmd/server/main.go` in one second (an editor's auto-save, a formatter on save), each
with a fresh token; it is timed from the burst's last write until the page serves the last token, and set
against a single save timed the same way, alternately (shuffled each round). A kodata-only edit appends a token to
`cmd/server/kodata/index.html`; it is timed from the write to serving, with a client connecting every 2 ms
meanwhile: the longest run of refused connections. Each contender does all three in its turn of a round.
"""

from __future__ import annotations

import time

from bench import lineup
from bench.alternate import (
    Runner,
    alternate,
    flags_text,
    part,
    problems,
    start_all,
    stop_all,
)
from bench.contenders import PAUSE, KodevServer
from bench.context import Context
from bench.measure import BenchError, median, wait_for_text
from bench.results import ScenarioResult, Table, Target, millis, seconds
from bench.swap import RefusedWindow

BURST_SAVES = 30
BURST_SECONDS = 1.0
BURST_SLACK = 0.1  # the target: served within one single-save time + 100 ms of the burst's end
KODATA_PAGE = "cmd/server/kodata/index.html"
SETTLE = 1.5  # seconds after a rival's burst or kodata edit: it may run one more (stale) build meanwhile
KODEV_SETTLE = 0.5

KODATA_BEHAVIOUR = {
    "kodev": "the changed files are extracted over /var/run/ko in the running container and kodev's supervisor "
             "restarts the app (apps often read kodata once, at start); the image follows",
    "ko": "the loop's watcher sees `kodata/` (ko packs it into the image): `ko build`, then the container is "
          "removed and run again",
    "skaffold": "`cmd/server/kodata` is added to the artifact's watched paths (its default, `**/*.go`, never "
                "rebuilds on kodata): a new image and a redeploy",
    "air": "kodata is read from the source directory (`KO_DATA_PATH`), and examples/hello reads `index.html` on "
           "every request: the next request serves it, air does nothing (`include_ext = [\"go\"]`); an app that "
           "read kodata once at start would keep the old page until a Go edit",
}


def burst(runner: Runner, token: str) -> float:
    """30 saves in one second; seconds from the last write until its token serves."""
    started = time.monotonic()
    last = started
    for n in range(BURST_SAVES):
        runner.edit(f"{token}-{n}")
        last = time.monotonic()
        pause = started + (n + 1) * BURST_SECONDS / BURST_SAVES - time.monotonic()
        if pause > 0 and n < BURST_SAVES - 1:
            time.sleep(pause)
    try:
        return wait_for_text(runner.port, f"{token}-{BURST_SAVES - 1} ", timeout=120) - last
    except BenchError as exc:
        process = getattr(runner, "process", None)
        said = f"\nit printed:\n{process.tail()}" if process is not None else ""
        raise BenchError(f"{exc}{said}") from None


def kodata_edit(runner: Runner, token: str) -> tuple[float, float]:
    """Append `token` to the kodata page: (seconds to serving it, longest refused run)."""
    page = runner.module / KODATA_PAGE
    with RefusedWindow(runner.port) as window:
        time.sleep(0.05)
        started = time.monotonic()
        page.write_text(page.read_text() + f"\n<!-- {token} -->\n")
        served = wait_for_text(runner.port, token, timeout=120) - started
        time.sleep(0.1)
    return served, window.longest


def three_edits(runner: Runner, token: str) -> tuple[float, dict[str, float]]:
    """A single save, a burst, a kodata edit: (the single save's time, {"burst", "kodata", "refused"})."""
    settle = KODEV_SETTLE if isinstance(runner, KodevServer) else SETTLE
    one, _ = runner.measure(f"{token}-one")
    time.sleep(PAUSE)
    many = burst(runner, f"{token}-burst")
    time.sleep(settle)
    served, refused = kodata_edit(runner, f"{token}-kodata")
    time.sleep(settle)
    return one, {"burst": many, "kodata": served, "refused": refused}


def bursts_and_kodata(context: Context) -> ScenarioResult:
    """Bursts of saves and kodata edits"""
    result = ScenarioResult(
        8, "Bursts of saves and kodata edits",
        f"{BURST_SAVES} saves of `cmd/server/main.go` in {BURST_SECONDS:.0f} s, each serving a fresh token, timed "
        "from the last write until the page serves the last token; in the same turn, a single save timed from its "
        "write (the same edit), and a kodata-only edit (`cmd/server/kodata/index.html` gains a token), timed "
        "from the write to serving, with a client connecting every 2 ms: the longest run of refused "
        f"connections. {SETTLE:.1f} s after a rival's burst or kodata edit ({KODEV_SETTLE:.1f} s after kodev's), "
        "for a build it may still cause. Contenders take "
        "turns on their own copies of examples/hello: kodev watch with its defaults (swap), the ko loop, "
        "`skaffold dev` and air, set up as in scenario 1. ")
    entries = [lineup.kodev(context, "s8-kodev"), lineup.ko(context, "s8-ko"),
               lineup.skaffold(context, "s8-skaffold"), lineup.air(context, "s8-air")]
    result.setup += flags_text(entries)
    try:
        start_all(context, entries, "scenario 8")
        alternate(context, entries, "scenario 8", measure=three_edits, tokens="b",
                  warmup=context.settings.rival_warmup, reps=context.settings.rival_reps)
    finally:
        stop_all(entries)
    rows = []
    for entry in entries:
        over = median([parts["burst"] - entry.values[key] for key, parts in entry.parts.items()])
        refused = [parts["refused"] for parts in entry.parts.values()]
        rows.append([entry.name, seconds(entry.series.median), seconds(part(entry, "burst")), millis(over),
                     seconds(part(entry, "kodata")), millis(median(refused)),
                     millis(max(refused)) if refused else "—", str(len(entry.values))])
    result.tables.append(Table(["contender", "single save", "last save of a burst", "burst − single (paired)",
                                "kodata edit → serving", "refused (median)", "refused (worst)", "n"], rows))
    result.notes += [f"What a kodata edit does — {entry.name}: {KODATA_BEHAVIOUR[entry.kind]}."
                     for entry in entries if entry.kind in KODATA_BEHAVIOUR]
    result.notes += problems(entries)
    kodev = entries[0]
    over = median([parts["burst"] - kodev.values[key] for key, parts in kodev.parts.items()])
    result.targets.append(Target(
        f"the last save of a {BURST_SAVES}-save burst served within one single save's time + "
        f"{BURST_SLACK * 1000:.0f} ms of the burst's end (kodev; median of the paired differences)",
        f"{millis(over)} over a single save", over <= BURST_SLACK if over == over else None))
    refused = [parts["refused"] for parts in kodev.parts.values()]
    worst = max(refused) if refused else float("nan")
    result.targets.append(Target(
        "a kodata-only edit served with no refused connection (kodev; client connecting every 2 ms)",
        f"longest refused run {millis(median(refused))} median, {millis(worst)} worst",
        worst == 0.0 if worst == worst else None))
    return result
