"""Scenario 1: edit to serving on examples/hello — kodev (swap and recreate) against the ko loop, `skaffold dev`,
air, the shell loop and the `go build` floor, alternately; and kodev's own `go build` against the identical
command run alone (issue 20).
"""

from __future__ import annotations

from bench import lineup
from bench.alternate import (
    Entry,
    alternate,
    breakdown_table,
    difference,
    flags_text,
    problems,
    ratio,
    ratio_text,
    results_table,
    start_all,
    stop_all,
)
from bench.context import Context
from bench.measure import median
from bench.results import ScenarioResult, Table, Target, millis

GO_PAIRS = 7  # the go-build target is a median of at least this many paired differences
GO_NOISE_SECONDS = 0.015  # "within noise": the paired difference's median ≤ max(15 ms, 5% of the command alone)
GO_NOISE_SHARE = 0.05
KO_TARGET = 0.35
SKAFFOLD_TARGET = 0.30
SHELL_TARGET = 0.55
OVERHEAD_TARGET = 0.080


def go_noise(alone: float) -> float:
    """The allowance for "no slower than the same command alone": max(15 ms, 5 % of its median)."""
    return max(GO_NOISE_SECONDS, GO_NOISE_SHARE * alone) if alone == alone else float("nan")


def go_pairs(kodev: Entry, alone: Entry) -> list[float]:
    """kodev's reported `go_seconds` minus the same command alone, per round both ran."""
    return [kodev.parts[key][lineup.KODEV_GO] - alone.values[key] for key in sorted(kodev.parts)
            if lineup.KODEV_GO in kodev.parts[key] and key in alone.values]


def target(goal: str, value: float, limit: float, text: str) -> Target:
    return Target(goal, text, value <= limit if value == value else None)


def edit_to_serving(context: Context) -> ScenarioResult:
    """Edit to serving (examples/hello)"""
    result = ScenarioResult(
        1, "Edit to serving (examples/hello)",
        "A one-line change in `cmd/server/main.go` (the page gains an HTML comment with a fresh token), timed "
        "from the file write until `127.0.0.1:PORT` serves the token (polled every 10 ms). Contenders take "
        "turns on their own copies (each once per round, in a shuffled order), each started and warm before "
        "the first round, and in "
        "each turn the others' watcher processes are stopped (SIGSTOP, continued after), so that no idle "
        "watcher's polling takes the cores from the one measured, and each turn starts once the machine is "
        "quiet: "
        "`kodev watch` (swap, the default: a main-only edit is compiled and linked directly, without the go "
        "command), `kodev watch` with `KODEV_DIRECT=0` (every build a `go build`), `kodev watch` with "
        "`KODEV_SWAP=0` (the container recreated), kodev's exact `go build` command run alone, the `go build` "
        "floor, the ko loop, `skaffold dev`, air and the shell loop. How each builds: ")
    hello = [lineup.kodev(context, "s1-kodev"), lineup.kodev(context, "s1-gobuild", go_build=True),
             lineup.kodev_go_command(context, "s1-gocmd"),
             lineup.floor(context, "s1-floor"), lineup.kodev(context, "s1-recreate", recreate=True),
             lineup.ko(context, "s1-ko"), lineup.skaffold(context, "s1-skaffold"), lineup.air(context, "s1-air"),
             lineup.shell(context, "s1-shell")]
    kodev, via_go, alone, floor, recreate, ko, skaffold, air, shell = hello
    result.setup += flags_text(hello)
    try:
        start_all(context, hello, "scenario 1")
        alternate(context, hello, "scenario 1")
        more = GO_PAIRS - len(go_pairs(via_go, alone))
        if more > 0 and via_go.live and alone.live:
            context.log(f"scenario 1: {more} more rounds of kodev and its go build alone (the go-build target "
                        f"needs {GO_PAIRS} pairs)")
            alternate(context, [via_go, alone], "scenario 1 (go build pairs)", warmup=0, reps=more,
                      offset=context.settings.warmup + context.settings.reps, tokens="g")
            result.notes.append(f"{more} extra rounds of {via_go.name} and its `go build` alone only (after the "
                                f"others), for the {GO_PAIRS} pairs the go-build target needs; its table row "
                                "counts them too.")
    finally:
        stop_all(hello)

    result.tables.append(results_table(hello))
    rows = [[f"kodev (swap) / {other.name}", ratio_text(ratio(kodev, other))] for other in (ko, skaffold, air, shell)]
    rows += [[f"kodev (recreate) / {other.name}", ratio_text(ratio(recreate, other))] for other in (ko, skaffold, air)]
    rows += [["kodev (swap) / kodev (recreate)", ratio_text(ratio(kodev, recreate))],
             ["kodev (swap) / kodev (swap, go build)", ratio_text(ratio(kodev, via_go))]]
    overhead = difference(via_go, floor)
    rows += [["kodev (swap) − floor (per round)", millis(difference(kodev, floor))],
             ["kodev (swap, go build) − floor (per round)", millis(overhead)],
             ["kodev (recreate) − floor (per round)", millis(difference(recreate, floor))],
             ["air − floor (per round)", millis(difference(air, floor))]]
    result.tables.append(Table(["derived (median of per-round ratios or differences)", "value"], rows))

    diffs = go_pairs(via_go, alone)
    alone_median = median([alone.values[k] for k in sorted(alone.values) if k in via_go.parts])
    kodev_go = median([parts[lineup.KODEV_GO] for parts in via_go.parts.values() if lineup.KODEV_GO in parts])
    direct_go = median([parts[lineup.KODEV_GO] for parts in kodev.parts.values() if lineup.KODEV_GO in parts])
    over_go = median(diffs)
    allowed = go_noise(alone_median)
    result.tables.append(Table(["kodev's `go build` against the same command alone", "value"], [
        ["kodev's `go_seconds` (its command.result event) with KODEV_DIRECT=0, median", millis(kodev_go)],
        ["the same command alone (`go build -trimpath -v -ldflags='-buildid= -s -w' -o DIR/ IMPORTPATH`), median",
         millis(alone_median)],
        [f"kodev − alone, median of {len(diffs)} paired differences", millis(over_go)],
        ["paired differences", ", ".join(millis(d) for d in diffs) or "—"],
        ["allowance (\"within noise\"): max(15 ms, 5 % of the command alone)", millis(allowed)],
        ["kodev's `go_seconds` by default (compiled and linked directly), median", millis(direct_go)],
    ]))
    result.tables.append(breakdown_table(hello))
    result.notes.append(
        "kodev's row: its image and load follow the swap, off the path to serving (with KODEV_SWAP=0 the "
        "container is recreated from the loaded image, on the path). The rivals' steps are read from their "
        "own output, each line timed as the benchmark read it: ko's `Using base` / `Building` / `Loading` / "
        "`Loaded`, Skaffold's `Generating tags` / `Checking cache` / `Starting build` / `Build [...] succeeded` / "
        "`Starting deploy`, air's `has changed` / `building` / `running`.")
    result.notes += problems(hello)

    result.targets.append(target(f"edit to serving: kodev ≤ {KO_TARGET}x the ko loop (median of per-pair ratios)",
                                 ratio(kodev, ko), KO_TARGET, ratio_text(ratio(kodev, ko))))
    result.targets.append(target(f"edit to serving: kodev ≤ {SKAFFOLD_TARGET}x skaffold dev (median of per-pair "
                                 "ratios)", ratio(kodev, skaffold), SKAFFOLD_TARGET,
                                 ratio_text(ratio(kodev, skaffold))))
    result.targets.append(target("edit to serving: kodev's overhead over the `go build` floor ≤ 80 ms (median; "
                                 "the binary swapped in place; kodev running `go build`, KODEV_DIRECT=0: by default "
                                 "it is below the floor)", overhead, OVERHEAD_TARGET, millis(overhead)))
    result.targets.append(target(f"edit to serving: kodev ≤ {SHELL_TARGET}x the shell loop (median of per-pair "
                                 "ratios)", ratio(kodev, shell), SHELL_TARGET, ratio_text(ratio(kodev, shell))))
    enough = len(diffs) >= GO_PAIRS
    result.targets.append(Target(
        f"kodev's `go build` no slower than the same command alone: median of ≥ {GO_PAIRS} paired differences "
        "(kodev's `go_seconds` − the command alone) ≤ max(15 ms, 5 % of the command alone)",
        f"{millis(over_go)} over (allowance {millis(allowed)}; {len(diffs)} pairs)",
        over_go <= allowed if enough and over_go == over_go else None))
    return result
