"""Scenarios 4 and 5: kodev's footprint (startup, idle CPU, memory) and how it scales with the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.contenders import (
    wait_event,
    write_config,
)
from bench.context import REPO, Context
from bench.generate import generate
from bench.measure import (
    BenchError,
    Series,
    cpu_seconds,
    fetch,
    free_port,
    memory_kb,
    pair_differences,
    wait_until,
)
from bench.results import ScenarioResult, Table, Target, seconds, series_table
from bench.sharedpkg import commands_toml, copy_module, kodev_round, module_200


def _kodev_script() -> list[str]:
    script = Path(sys.executable).parent / "kodev"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kodev"]


def _timed_run(argv: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO, timeout=60)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def footprint(context: Context) -> ScenarioResult:
    """Footprint"""
    settings = context.settings
    shape = module_200(context)
    services = 3
    result = ScenarioResult(
        4, "Footprint",
        f"`kodev --help` wall time (the console script, {max(settings.reps, 5)} runs after a warm-up, alternated "
        "with a bare `python -c pass` for reference). `kodev watch` on a fresh copy of the generated module "
        f"({len(shape.commands)} commands, {shape.packages} packages; {services} run as services on "
        "127.0.0.1, the rest in `[commands]`): time from process start until every service serves (Go build "
        f"cache warm), CPU of the kodev process over {settings.idle_seconds:.0f} s idle (from /proc), and its "
        "peak RSS (VmHWM) after start-up, the idle period and one rebuild.")
    help_series, python_series = Series("kodev --help"), Series("python -c pass (reference)")
    argv = [*_kodev_script(), "--help"]
    for index in range(settings.warmup + max(settings.reps, 5)):
        k = _timed_run(argv)
        p = _timed_run([sys.executable, "-c", "pass"])
        if index >= settings.warmup:
            help_series.values.append(k)
            python_series.values.append(p)
    context.log(f"scenario 4: kodev --help median {help_series.median:.3f}s")

    module = copy_module(context, shape, "s4-watch")
    ports = [free_port() for _ in range(services)]
    names = [context.name(f"s4-{i}") for i in range(services)]
    context.containers.update(names)
    config = f'repo = "{context.repo}/s4"\n\n'
    for name, port, directory in zip(names, ports, shape.command_dirs, strict=False):
        config += (f'[services.{name}]\ncommand = "{directory}"\nargs = ["-addr", "127.0.0.1:{port}"]\n'
                   'network = "host"\nstop_timeout = 5\n\n')
    config += commands_toml(shape, skip=frozenset(shape.command_dirs[:services]))
    write_config(module, config)
    process = context.kodev(module, "watch", "--json")
    try:
        serving = wait_until(lambda: all(fetch(p) is not None for p in ports), 600, "every service to serve")
        startup = serving - process.started
        wait_event(process, "watching", timeout=120)
        context.log(f"scenario 4: kodev watch start to {services} services serving: {startup:.2f}s; "
                    f"idle for {settings.idle_seconds:.0f}s")
        time.sleep(1.0)  # the last log lines, the first build's tail
        cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
        time.sleep(settings.idle_seconds)
        cpu_after, wall_after = cpu_seconds(process.pid), time.monotonic()
        idle_percent = (cpu_after - cpu_before) / (wall_after - wall_before) * 100
        rss_idle = memory_kb(process.pid) / 1024
        rebuild: float | None = None
        rebuilt: list[str] = []
        if not any(label.startswith("scenario 2") for label in context.peaks):
            rebuild, rebuilt, _go = kodev_round(process, module, f"s4-{context.uid}")
        peak = memory_kb(process.pid) / 1024
        current = memory_kb(process.pid, "VmRSS") / 1024
    finally:
        context.stop(process)
    context.peaks["scenario 4 kodev watch (start, idle, 1 rebuild)"] = peak
    result.tables.append(series_table([help_series, python_series]))
    rows = [
        ["`kodev watch` start → all services serving", seconds(startup)],
        [f"idle CPU over {settings.idle_seconds:.0f} s", f"{idle_percent:.2f} %"],
        ["peak RSS after start-up and idle", f"{rss_idle:.1f} MB"],
        [f"peak RSS after one rebuild ({len(rebuilt)} commands, {rebuild:.2f} s)" if rebuild is not None
         else "peak RSS at the end (rebuilds: see scenario 2's process below)", f"{peak:.1f} MB"],
        ["RSS at the end", f"{current:.1f} MB"],
    ]
    rows += [[f"peak RSS, {label}", f"{value:.1f} MB"] for label, value in context.peaks.items()
             if not label.startswith("scenario 4")]
    result.tables.append(Table(["kodev watch on the generated module", "value"], rows))
    overall_peak = max(context.peaks.values())
    result.targets.append(Target("`kodev --help` < 0.3 s (median)", seconds(help_series.median),
                                 help_series.median < 0.3))
    result.targets.append(Target("`kodev watch` idle CPU < 1 %", f"{idle_percent:.2f} %", idle_percent < 1.0))
    result.targets.append(Target(f"`kodev watch` peak RSS < 100 MB on the {shape.packages}-package module",
                                 f"{overall_peak:.1f} MB", overall_peak < 100))
    return result


# --- scenario 5 ----------------------------------------------------------------------------------------

@dataclass
class ScaleShape:
    packages: int
    files: int


def scale(context: Context) -> ScenarioResult:
    """Scale (package graph of a large module)"""
    settings = context.settings
    wanted = ScaleShape(settings.scale_packages, settings.scale_files)
    reps = max(settings.reps, 3)
    result = ScenarioResult(
        5, f"Scale ({wanted.packages:,} packages, {wanted.files:,} files)",
        f"`kodev.gomod.load_graph` (the `go list -deps -json` kodev runs at start and after a new file or import, "
        f"decoded into its graph) of a generated module with 20 commands, {wanted.packages:,} library packages "
        f"and {wanted.files:,} `.go` files, in a fresh Python process: median of {reps} loads after a warm-up, "
        "the `go list` alone with the same arguments, Python's allocations while loading (tracemalloc), the "
        f"process's peak RSS, and `kodev.affected.decide` for one changed file and for a batch of "
        f"{settings.decide_batch:,} (a branch switch).")
    if settings.quick:
        result.notes.append(f"Quick mode: scale scenario on {wanted.packages:,} packages / {wanted.files:,} files "
                            "instead of 2,000 / 10,000.")
    root = context.work / "scale"
    started = time.monotonic()
    shape = generate(root, commands=20, packages=wanted.packages, files=wanted.files, servers=False)
    generated = time.monotonic() - started
    context.log(f"scenario 5: generated {shape.packages} packages, {shape.files} files in {generated:.1f}s; "
                "loading the graph")
    done = subprocess.run([sys.executable, "-m", "bench.graphload", str(root), str(reps),
                           str(settings.decide_batch)], capture_output=True,
                          text=True, check=False, timeout=1200, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise BenchError(f"bench.graphload failed: {done.stderr[-1500:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    load = Series("load_graph", data["load_graph_s"])
    golist = Series("go list alone", data["go_list_s"])
    python_part = Series("Python part (load_graph − go list, per pair)", pair_differences(load, golist))
    result.tables.append(series_table([load, golist, python_part]))
    result.tables.append(Table(["graph", "value"], [
        ["packages in the graph (incl. commands) / their build files",
         f"{data['packages']:,} / {data['files']:,}"],
        ["Python allocations while loading (tracemalloc peak)", f"{data['tracemalloc_peak_mb']:.1f} MB"],
        ["kept by the graph", f"{data['graph_kept_mb']:.1f} MB"],
        ["process peak RSS (interpreter + kodev + graph)", f"{data['peak_rss_mb']:.1f} MB"],
        ["RSS before loading (interpreter + kodev imports)", f"{data['rss_before_mb']:.1f} MB"],
        ["`decide` for 1 changed file", f"{data['decide_one_ms']:.2f} ms"],
        [f"`decide` for {data['decide_batch_files']:,} changed files", f"{data['decide_batch_ms']:.0f} ms"],
    ]))
    return result
