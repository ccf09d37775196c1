"""Scenario 2: a shared-package change in a generated 20-command module — kodev rebuilds the affected
commands, a glob-based watcher rebuilds them all.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench import sharedrivals
from bench.contenders import (
    PAUSE,
    event_pattern,
    parse_event,
    parse_result,
    rounds,
    wait_event,
    write_config,
)
from bench.context import Context
from bench.generate import Shape, generate, set_shared_tag
from bench.measure import (
    Process,
    Series,
    median,
    memory_kb,
    pair_ratios,
)
from bench.results import ScenarioResult, Table, Target, seconds, series_table


def module_200(context: Context) -> Shape:
    """The pristine generated module (20 commands, 200 packages), written once per run."""
    root = context.work / "gen200"
    settings = context.settings
    if context.shape200 is None:
        started = time.monotonic()
        context.shape200 = generate(root, commands=settings.module_commands, packages=settings.module_packages)
        context.log(f"generated {root.name}: {len(context.shape200.commands)} commands, "
                    f"{context.shape200.packages} packages, {context.shape200.files} files in "
                    f"{time.monotonic() - started:.2f}s")
    return context.shape200


def copy_module(context: Context, shape: Shape, label: str) -> Path:
    target = context.work / label
    shutil.copytree(shape.root, target)
    return target


def commands_toml(shape: Shape, skip: frozenset[str] = frozenset()) -> str:
    return "".join(f'[commands."{d}"]\n' for d in shape.command_dirs if d not in skip)


def kodev_round(process: Process, module: Path, tag: str, quiet: float = 1.0) -> tuple[float, list[str], float]:
    """Edit internal/shared in `module`; (seconds to the last `command.result`, commands, kodev's go time)."""
    mark = process.mark()
    started = time.monotonic()
    set_shared_tag(module, tag)
    result = event_pattern("command.result")
    process.wait_for(result, mark=mark, timeout=180, stream="stdout")
    lines = process.quiet_after(result, mark, quiet=quiet, timeout=300)
    results = [parse_event(line) for line in lines]
    names = [event["command"] for event in results]
    go_time = median([parse_result(event).get("go", float("nan")) for event in results])
    return lines[-1].at - started, names, go_time


# --- scenario 2 ----------------------------------------------------------------------------------------

def shared_package(context: Context) -> ScenarioResult:
    """Shared-package change (generated module)"""
    shape = module_200(context)
    affected = sorted(c.rsplit("/", 1)[-1] for c in shape.affected)
    result = ScenarioResult(
        2, f"Shared-package change ({len(shape.commands)} commands, {shape.packages} packages)",
        f"A generated module ({len(shape.commands)} commands, {shape.packages} library packages, {shape.files} "
        f"files; `internal/shared` is imported by {len(affected)} commands: {', '.join(affected)}). One line of "
        "`internal/shared` changes; timed from the write until the last command is rebuilt and loaded (no "
        "services run, so nothing restarts). Contenders on their own copies: `kodev watch` with every command in "
        "`[commands]` (rebuilds what the package graph says is affected); **kodev's own pipeline told to rebuild "
        "all** — `bench/globwatch.py`: watchfiles on `**/*.go` with kodev's settings, then `Builder.build` of "
        "all commands (one `go build`, an image and a load each: what `kodev build ./cmd/...` does), in a "
        "long-lived process like kodev watch — what a glob-based watcher does (skaffold's default for ko "
        "artifacts watches `**/*.go`). Then the real rivals, in turn in the same rounds, each timed until every "
        "image is in the daemon: the **ko loop** — " + sharedrivals.KO_ALL_FLAGS + " **skaffold dev** — "
        + sharedrivals.SKAFFOLD_ALL_FLAGS + " Its time is to its last `Build [...] succeeded` line; its deploy "
        "after that is reported apart.")
    if not context.settings.shared_rivals:
        result.notes.append("Quick mode: the ko loop and skaffold dev were not run here (they add about 2 minutes "
                            "on 2 cores); `python -m bench --quick --only 2 --rivals` runs them, the full run "
                            "always does.")
    elif context.settings.skaffold_artifacts:
        result.notes.append(f"skaffold dev ran on the first {context.settings.skaffold_artifacts} commands only "
                            f"(c00-c{context.settings.skaffold_artifacts - 1:02d}, the 3 affected among them), not "
                            f"all {len(shape.commands)}: it builds one artifact at a time, and 20 took 12 s a "
                            "round on a quiet 2-core machine and 40 s under load, too long for this mode. Its time "
                            "is not comparable with the others' 20-command rebuilds.")
    settings = context.settings
    if settings.quick:
        result.notes.append(f"Quick mode: {settings.shared_warmup or 0} warm-up rounds (the first build of each "
                            f"contender warms it) and {settings.shared_reps} counted rounds.")
    else:
        result.notes.append(f"{settings.shared_warmup} warm-up round and {settings.shared_reps} counted rounds "
                            "(fewer than the other scenarios: contender B links 20 commands a round).")
    result.notes.append("Scenario 2's contender B is kodev's pipeline through its Python API "
                        "(`Session.plan` + `Builder.build` on all plans), triggered by a `*.go` glob watcher.")
    mod_a = copy_module(context, shape, "s2-kodev")
    mod_b = copy_module(context, shape, "s2-glob")
    write_config(mod_a, f'repo = "{context.repo}/s2-kodev"\n\n' + commands_toml(shape))
    write_config(mod_b, f'repo = "{context.repo}/s2-glob"\n\n' + commands_toml(shape))
    rivals = (sharedrivals.open_rivals(context, shape, lambda label: copy_module(context, shape, label))
              if settings.shared_rivals else [])
    a_series, b_series = Series("kodev watch (affected only)"), Series("kodev pipeline, all commands (glob)")
    a_by_round: dict[int, float] = {}
    counts: list[list[str]] = []
    b_counts: list[int] = []
    a_go: list[float] = []
    context.log("scenario 2: first builds of both contenders (20 commands each)")
    a = context.kodev(mod_a, "watch", "--json")
    b = context.python(mod_b, "bench.globwatch", *shape.command_dirs)
    try:
        wait_event(a, "watching", timeout=600)
        b.wait_for(r"^ready ", timeout=600, stream="stdout")
        sharedrivals.start_rivals(context, rivals)
        time.sleep(PAUSE)
        for index, counted in rounds(context, settings.shared_warmup, settings.shared_reps):
            seconds_a, names, go_a = kodev_round(a, mod_a, f"a-{context.uid}-{index}")
            time.sleep(PAUSE)
            mark = b.mark()
            started = time.monotonic()
            set_shared_tag(mod_b, f"b-{context.uid}-{index}")
            line = b.wait_for(r"^built \d+ ", mark=mark, timeout=300, stream="stdout")[0]
            seconds_b = line.at - started
            time.sleep(PAUSE)
            said = sharedrivals.run_round(context, rivals, index, counted)
            context.log(f"scenario 2 round {index + 1}{'' if counted else ' (warm-up)'}: kodev {seconds_a:.3f}s "
                        f"({len(names)} commands), all {seconds_b:.3f}s ({line.text.split()[1]} commands)"
                        f"{', ' + said if said else ''}")
            if counted:
                a_series.values.append(seconds_a)
                a_by_round[index] = seconds_a
                b_series.values.append(seconds_b)
                counts.append(sorted(names))
                b_counts.append(int(line.text.split()[1]))
                a_go.append(go_a)
        context.peaks["scenario 2 kodev watch (20 commands, all rounds)"] = memory_kb(a.pid) / 1024
    finally:
        context.stop(a)
        context.stop(b)
        sharedrivals.stop_rivals(rivals)
    ratio = median(pair_ratios(a_series, b_series))
    table = series_table([a_series, b_series])
    table.headers.append("commands rebuilt")
    table.rows[0].append(", ".join(sorted({str(len(c)) for c in counts})) or "—")
    table.rows[1].append(", ".join(sorted({str(n) for n in b_counts})) or "—")
    rival_series, rival_derived, rival_notes = sharedrivals.rival_rows(rivals, a_by_round)
    table.rows += rival_series
    result.tables.append(table)
    result.tables.append(Table(["derived", "value"], [
        ["kodev / all (median of per-pair ratios)", f"{ratio:.2f}x"],
        *rival_derived,
        ["kodev's `go` time (median)", seconds(median(a_go))],
        ["commands kodev rebuilt", "; ".join(sorted({", ".join(c) for c in counts})) or "—"],
    ]))
    result.notes += rival_notes
    exact = bool(counts) and all(c == affected for c in counts)
    result.targets.append(Target(f"the {len(shape.commands)}-command module rebuilds exactly the affected "
                                 f"commands ({', '.join(affected)})",
                                 f"{sorted({len(c) for c in counts})} commands per round", exact if counts else None))
    return result


# --- scenario 3 ----------------------------------------------------------------------------------------
