"""The scenarios of issue 5, registered by number: 3 (base size) here, 1 (edit to serving, with the rivals of
issue 20) in hello.py, 2 in sharedpkg.py, 4 and 5 in footprint.py. Each returns a `ScenarioResult`;
contenders run alternately (bench/alternate.py: every contender once per round, shuffled).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import hello
from bench.contenders import (
    PAUSE,
    GoFloor,
    KodevServer,
    ShellLoop,
    big_base,
    median_of,
    rounds,
    static_base,
)
from bench.context import Context
from bench.footprint import footprint, scale
from bench.measure import (
    Series,
    median,
    pair_differences,
    pair_ratios,
)
from bench.results import ScenarioResult, Table, Target, millis, seconds, series_table
from bench.sharedpkg import shared_package


# `python -m bench` runs scenario 1 from bench/hello.py (with the rivals of issue 20). This, issue 5's three-
# contender version, stays for tests/integration/test_bench_smoke.py, which runs one repetition of it.
def edit_to_serving(context: Context) -> ScenarioResult:
    """Edit to serving (examples/hello)"""
    result = ScenarioResult(
        1, "Edit to serving (examples/hello)",
        "A one-line change in `cmd/server/main.go` (the page gains an HTML comment with a fresh token), timed "
        "from the file write until `127.0.0.1:PORT` serves the token (polled every 10 ms). Contenders, in turn "
        "on their own copies: `kodev watch` (running, warm, base `static`); the shell loop (watchfiles with "
        "kodev's settings → `go build` + `docker build` of a `FROM base / COPY` Dockerfile whose base is "
        "kodev's static layer + `docker rm -f` + `docker run`); the floor, `go build` alone with kodev's "
        "flags, timed from the same kind of write (no watcher). All three build with kodev watch's flags "
        "(`-trimpath -ldflags='-buildid= -s -w'`).")
    builder = "BuildKit (buildx)" if context.buildkit else "classic builder (DOCKER_BUILDKIT=0; no buildx plugin)"
    result.notes.append(f"`docker build` used the {builder}.")
    base = static_base(context)
    kodev = KodevServer(context, "s1-kodev")
    shell = ShellLoop(context, "s1-shell", base)
    floor = GoFloor(context, "s1-floor")
    series = [Series("kodev watch"), Series("shell loop"), Series("go build (floor)")]
    kodev_stages: list[dict[str, float]] = []
    shell_steps: list[dict[str, float]] = []
    try:
        context.log(f"scenario 1: starting kodev watch and the shell loop (ports {kodev.port}, {shell.port})")
        kodev.start()
        shell.start()
        floor.build()
        for index, counted in rounds(context):
            token = f"{context.uid}-{index}"
            k, stages = kodev.measure(f"kodev-{token}")
            time.sleep(PAUSE)
            s, steps = shell.measure(f"shell-{token}")
            time.sleep(PAUSE)
            f = floor.measure(f"floor-{token}")
            time.sleep(PAUSE)
            context.log(f"scenario 1 round {index + 1}{'' if counted else ' (warm-up)'}: kodev {k:.3f}s, "
                        f"shell {s:.3f}s, go build {f:.3f}s")
            if counted:
                for one, value in zip(series, (k, s, f), strict=True):
                    one.values.append(value)
                kodev_stages.append({**stages, "outside": k - stages.get("total", float("nan"))})
                shell_steps.append(steps)
    finally:
        kodev.stop()
        shell.stop()

    kodev_s, shell_s, floor_s = series
    overhead = median(pair_differences(kodev_s, floor_s))
    ratio = median(pair_ratios(kodev_s, shell_s))
    result.tables.append(series_table(series))
    result.tables.append(Table(["derived (median over rounds)", "value"], [
        ["kodev − floor (per round)", millis(overhead)],
        ["median(kodev) − median(floor)", millis(kodev_s.median - floor_s.median)],
        ["kodev / shell loop (per-pair ratio)", f"{ratio:.2f}x"],
        ["shell loop − floor (per round)", millis(median(pair_differences(shell_s, floor_s)))],
    ]))
    result.tables.append(Table(["where the time goes (medians)", "kodev watch", "shell loop"], [
        ["watcher → build starts", "(in the next row)", millis(median_of(shell_steps, "watcher"))],
        ["kodev: edit to serving − its 'rebuilt in' (watcher, the binary's digest, the app's restart)",
         millis(median_of(kodev_stages, "outside")), "—"],
        ["go build", millis(median_of(kodev_stages, "go")), millis(median_of(shell_steps, "go build"))],
        ["image (kodev) / docker build", millis(median_of(kodev_stages, "image")),
         millis(median_of(shell_steps, "docker build"))],
        ["load (kodev)", millis(median_of(kodev_stages, "load")), "—"],
        ["swap (kodev; the load follows, off the path to serving)", millis(median_of(kodev_stages, "swap")), "—"],
        ["restart (kodev) / docker rm -f + run", millis(median_of(kodev_stages, "restart")),
         millis(median_of(shell_steps, "docker rm -f") + median_of(shell_steps, "docker run"))],
        ["kodev's own 'rebuilt in'", seconds(median_of(kodev_stages, "total")), "—"],
        ["CPU of the kodev process itself (not go, not dockerd)", millis(median_of(kodev_stages, "cpu")), "—"],
        ["sent to the daemon", f"{median_of(kodev_stages, 'sent_mb'):.1f} MB", "(build context)"],
    ]))
    result.targets.append(Target("edit to serving: kodev's overhead over the `go build` floor ≤ 80 ms (median; "
                                 "the binary swapped in place)",
                                 millis(overhead), overhead <= 0.080 if overhead == overhead else None))
    result.targets.append(Target("edit to serving: kodev ≤ 0.55x the shell loop (median of per-pair ratios)",
                                 f"{ratio:.2f}x", ratio <= 0.55 if ratio == ratio else None))
    return result


def base_size(context: Context) -> ScenarioResult:
    """Base size (scratch vs a large base)"""
    megabytes = context.settings.base_mb
    result = ScenarioResult(
        3, f"Base size (scratch vs {megabytes} MB)",
        f"The scenario 1 edit, timed from the write until the page serves the token, with `kodev watch` on two "
        f"copies of examples/hello in turn: one with `base = \"scratch\"`, one with a {megabytes} MB base in the "
        "daemon (`docker import` of a tar of random data). The ratio shows whether a rebuild's cost grows with "
        "the base.")
    context.log(f"scenario 3: importing a {megabytes} MB base into the daemon")
    started = time.monotonic()
    ref = big_base(context, megabytes)
    context.log(f"scenario 3: base {ref} imported in {time.monotonic() - started:.1f}s")
    small = KodevServer(context, "s3-scratch", base="scratch")
    large = KodevServer(context, "s3-big", base=ref)
    series = [Series("base scratch"), Series(f"base {megabytes} MB")]
    stages: list[list[dict[str, float]]] = [[], []]
    try:
        small.start()
        first = large.start()
        context.log(f"scenario 3: kodev watch with the {megabytes} MB base serving after {first:.1f}s "
                    "(first build reads the base into kodev's cache)")
        for index, counted in rounds(context):
            values = []
            for position, server in enumerate((small, large)):
                value, parsed = server.measure(f"{server.label}-{context.uid}-{index}")
                values.append(value)
                if counted:
                    series[position].values.append(value)
                    stages[position].append(parsed)
                time.sleep(PAUSE)
            context.log(f"scenario 3 round {index + 1}{'' if counted else ' (warm-up)'}: scratch {values[0]:.3f}s, "
                        f"{megabytes} MB {values[1]:.3f}s")
    finally:
        small.stop()
        large.stop()
    ratio = median(pair_ratios(series[1], series[0]))
    result.tables.append(series_table(series))
    result.tables.append(Table(["medians", "scratch", f"{megabytes} MB"], [
        ["kodev 'rebuilt in'", seconds(median_of(stages[0], "total")), seconds(median_of(stages[1], "total"))],
        ["image", millis(median_of(stages[0], "image")), millis(median_of(stages[1], "image"))],
        ["load", millis(median_of(stages[0], "load")), millis(median_of(stages[1], "load"))],
        ["restart", millis(median_of(stages[0], "restart")), millis(median_of(stages[1], "restart"))],
        ["sent to the daemon", f"{median_of(stages[0], 'sent_mb'):.1f} MB",
         f"{median_of(stages[1], 'sent_mb'):.1f} MB"],
        [f"{megabytes} MB / scratch (median of per-pair ratios)", "", f"{ratio:.2f}x"],
    ]))
    result.targets.append(Target(f"{megabytes} MB base: ≤ 1.2x the scratch-base time (median of per-pair ratios)",
                                 f"{ratio:.2f}x", ratio <= 1.2 if ratio == ratio else None))
    return result


# --- scenario 4 ----------------------------------------------------------------------------------------


SCENARIOS: dict[int, Callable[[Context], ScenarioResult]] = {
    1: hello.edit_to_serving,
    2: shared_package,
    3: base_size,
    4: footprint,
    5: scale,
}
