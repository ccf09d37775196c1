"""Scenario 9: a real module with downloaded dependencies (bench/depsmod.py) — cold start -> serving and a
one-line edit -> serving, kodev against the ko loop, `skaffold dev`, air and the `go build` floor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench import depsmod, lineup
from bench.alternate import (
    Entry,
    Runner,
    alternate,
    breakdown_table,
    describe,
    difference,
    flags_text,
    problems,
    ratio,
    ratio_text,
    results_table,
    start_all,
    stop_all,
)
from bench.contenders import PAUSE, KodevServer, event_pattern, rounds
from bench.context import Context
from bench.hello import go_pairs
from bench.measure import BenchError, fetch, median
from bench.results import ScenarioResult, Table, millis, seconds
from bench.rivalmarks import Mark, Marks, stages

Factory = Callable[[str], Entry]


# kodev's cold start, from its events (each timed as read) between the process's start and the page serving.
KODEV_COLD = Marks((Mark("Python, config, daemon → `started`", event_pattern("started")),
                    Mark("→ graph loaded (go list)", event_pattern("graph.loaded")),
                    Mark("→ build started", event_pattern("build.started")),
                    Mark("go build", event_pattern("build.finished")),
                    Mark("→ image published (layers + load)", event_pattern("image.published")),
                    Mark("→ delivered (container created, started)", event_pattern("delivered"))),
                   "→ serving")


def timed_start(runner: Runner, token: str, timeout: float = 600) -> tuple[float, dict[str, float]]:
    """Write `token` into the server, start the contender: seconds until the page serves it (the floor,
    which serves nothing: until its build ends); kodev's breakdown of it."""
    runner.edit(token)
    started = time.monotonic()
    if runner.port == 0:
        runner.start()
        return time.monotonic() - started, {}
    failure: list[BaseException] = []

    def start() -> None:
        try:
            runner.start()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=start, name="cold-start", daemon=True)
    thread.start()
    deadline = started + timeout
    while True:
        body = fetch(runner.port)
        now = time.monotonic()
        if body is not None and token in body:
            break
        if failure:
            raise failure[0]
        if now > deadline:
            raise BenchError(f"127.0.0.1:{runner.port} never served {token!r} within {timeout:.0f}s of the start")
        time.sleep(0.01)
    thread.join(timeout=timeout)  # start() returns once it has seen what it waits for itself
    if failure:
        raise failure[0]
    if isinstance(runner, KodevServer) and runner.process is not None:
        process = runner.process
        return now - started, stages(process.since(0, stream="stdout"), KODEV_COLD, process.started, now)
    return now - started, {}


def cold_starts(context: Context, factories: list[Factory], reps: int) -> list[Entry]:
    """Each round, each contender on a fresh copy: started from nothing of its own, stopped. One entry per
    contender, for the values (by round) and the first error."""
    cold = [factory("s9-cold") for factory in factories]  # never started: names, flags, install errors
    for index, counted in rounds(context, 0, reps):
        said = []
        for position, entry in enumerate(cold):
            if entry.error or entry.make is None:
                continue
            one = factories[position](f"s9-{entry.kind}-c{index}")
            try:
                assert one.make is not None
                one.runner = one.make()
                value, parts = timed_start(one.runner, f"{entry.kind}-{context.uid}-cold{index}")
            except Exception as exc:
                entry.error = f"cold start {index + 1}: {describe(exc)}"
                said.append(f"{entry.kind} FAILED")
                one.stop()
                continue
            one.stop()
            if one.error:  # its stop failed
                entry.error = one.error
            said.append(f"{entry.kind} {value:.2f}s")
            if counted:
                entry.values[index] = value
                entry.parts[index] = parts
            time.sleep(PAUSE)
        context.log(f"scenario 9 cold start {index + 1}: {', '.join(said) or 'nobody ran'}")
    return cold


def ratio_rows(kodev: Entry, others: list[Entry], what: str) -> list[list[str]]:
    return [[f"{what}: kodev / {other.name}", ratio_text(ratio(kodev, other))] for other in others]


def real_module(context: Context) -> ScenarioResult:
    """A real module with dependencies from the module proxy"""
    result = ScenarioResult(9, "A real module with dependencies from the module proxy", "")
    root = context.work / "s9-module"
    started = time.monotonic()
    module = depsmod.prepare(root, context.go)
    context.log(f"scenario 9: module with {len(module.third_party)} third-party packages, resolved from "
                f"{module.resolved_from} in {time.monotonic() - started:.1f}s")
    settings = context.settings
    reps = settings.rival_reps if settings.rival_reps is not None else settings.reps
    pins = ", ".join(f"{path} {version}" for path, version in depsmod.DEPENDENCIES)
    result.setup = (
        f"A generated HTTP service (`{depsmod.MODULE}`, bench/depsmod.py) using {pins} and golang.org/x/text and "
        f"x/sync: {len(module.third_party)} third-party packages in `cmd/server`'s graph (`go list -deps`, "
        f"standard library and the module's own packages left out), {len(module.modules)} modules in go.mod, "
        f"resolved by `go get` + `go mod tidy` from {module.resolved_from} into the bench's own module cache "
        f"({depsmod.modcache()}); every contender then runs with that GOMODCACHE and GOPROXY=off (nothing is "
        "fetched while timed) and the Go build cache holding the dependencies (compiled once first: the "
        "build cache is Go's, shared by all, as on a developer's machine). **Cold start → serving**: a fresh "
        "copy, a fresh token in `cmd/server/main.go` (so the main package is compiled and linked), the "
        "contender started from nothing of its own (no process, image or container of it), timed until the "
        f"page serves the token; {reps} rounds, contenders in turn. **Edit → serving**: the scenario 1 edit "
        "on a running, warm contender, alternately; kodev's `go build` command alone joins these rounds, for "
        "scenario 1's comparison with kodev's `go_seconds`. Contenders as in scenario 1: ")
    factories: list[Factory] = [
        lambda label: lineup.kodev(context, label, source=root),
        lambda label: lineup.ko(context, label, source=root),
        lambda label: lineup.skaffold(context, label, source=root),
        lambda label: lineup.air(context, label, source=root),
        lambda label: lineup.floor(context, label, source=root),
    ]
    with depsmod.environment(depsmod.offline()):
        primed = prime(context, root)
        context.log(f"scenario 9: the dependencies compiled into Go's build cache in {primed:.1f}s")
        cold = cold_starts(context, factories, reps)
        warm = [factory(f"s9-{index}") for index, factory in enumerate(factories)]
        warm.append(lineup.kodev_go_command(context, "s9-gocmd", source=root))  # edit rounds only
        result.setup += flags_text(warm)
        try:
            start_all(context, warm, "scenario 9")
            alternate(context, warm, "scenario 9", warmup=settings.rival_warmup, reps=settings.rival_reps,
                      tokens="e")
        finally:
            stop_all(warm)
    result.notes.append(f"`go build` of the module with the Go build cache as it was (the dependencies compiled "
                        f"if missing): {seconds(primed)} before the rounds.")
    result.tables.append(_named(results_table(cold), "cold start → serving"))
    result.tables.append(_named(results_table(warm), "edit → serving"))
    kodev, ko, skaffold, air, floor, alone = warm
    rows = ratio_rows(cold[0], cold[1:4], "cold start") + ratio_rows(kodev, [ko, skaffold, air], "edit")
    rows += [["cold start: kodev − floor (per round)", millis(difference(cold[0], cold[4]))],
             ["edit: kodev − floor (per round)", millis(difference(kodev, floor))]]
    pairs = go_pairs(kodev, alone)
    rows += [[f"edit: kodev's `go_seconds` − its `go build` alone (median of {len(pairs)} pairs; scenario 1's "
              "comparison)", millis(median(pairs))]]
    result.tables.append(Table(["derived (median of per-round ratios or differences)", "value"], rows))
    result.tables.append(breakdown_table(cold[:1], "cold start → serving"))
    result.tables.append(breakdown_table(warm))
    result.notes.append(f"The module's go.mod after `go mod tidy`: {'; '.join(module.modules)}.")
    result.notes += problems(cold) + problems(warm)
    if settings.quick:
        result.notes.append(f"Quick mode: {reps} cold starts and {settings.rival_warmup or 0} warm-up + "
                            f"{reps} edit rounds per contender.")
    return result


def prime(context: Context, root: Path) -> float:
    """`go build` the module once (kodev's target environment), so that every contender finds the
    dependencies compiled; its seconds."""
    floor = lineup.KodevGoCommand(context, "s9-prime", source=root)
    started = time.monotonic()
    floor.run()
    return time.monotonic() - started


def _named(table: Table, what: str) -> Table:
    table.headers[0] = f"{what}"
    return table
