"""The machine the benchmark ran on, and the markdown report (bench/results.md and the terminal)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.alternate import quote
from bench.context import REPO, Context, load_average
from bench.lineup import versions
from bench.results import ScenarioResult, Table


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() if done.returncode == 0 else "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def machine(context: Context) -> list[tuple[str, str]]:
    """What the numbers depend on: hardware, toolchains, daemon, the kodev revision measured."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        version: dict[str, Any] = context.client.api.version()
        info: dict[str, Any] = context.client.api.info()
        docker_server = f"{version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"
        storage = f"{info.get('Driver', '?')}, {info.get('OperatingSystem', '?')}"
    except Exception:
        docker_server, storage = "?", "?"
    from kodev import __version__

    commit = _run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    dirty = _run(["git", "status", "--porcelain", "--", "kodev"], cwd=REPO)
    builder = "BuildKit (buildx)" if context.buildkit else "classic builder (no buildx plugin; DOCKER_BUILDKIT=0)"
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} ({usable} usable)"),
        ("memory", _memory()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("Go", _run([context.go, "version"]).removeprefix("go version ")),
        ("Go toolchain's GC (every contender)", f"GOGC={os.environ.get('GOGC', '100 (unset)')}, "
                                               f"GOMEMLIMIT={os.environ.get('GOMEMLIMIT', 'unset')}"),
        ("Docker", f"server {docker_server}; client {_run(['docker', 'version', '--format', '{{.Client.Version}}'])}"),
        ("Docker storage", storage),
        ("docker build", builder),
        ("kodev", f"{__version__} at {commit}{' + local changes' if dirty not in ('', '?') else ''}"),
        *versions(context),  # the rivals (ko, air, Skaffold), crane and the registry, as installed
        ("load average (1/5/15 min)", f"{context.load_at_start} at the start, {load_average()} at the end "
         "(other work on the machine makes the numbers noisier)"),
    ]


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(table.headers) + " |", "|" + "|".join(" --- " for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return lines


def render(context: Context, results: list[ScenarioResult], elapsed: float, argv: list[str]) -> str:
    settings = context.settings
    mode = "quick" if settings.quick else "full"
    lines = [
        "# kodev benchmark results",
        "",
        f"`python -m bench{' ' + ' '.join(argv) if argv else ''}` — **{mode} mode**: {settings.warmup} warm-up "
        f"round, then {settings.reps} counted repetitions per contender (scenario 2: "
        f"{settings.shared_warmup if settings.shared_warmup is not None else settings.warmup} warm-up + "
        f"{settings.shared_reps or settings.reps} counted), run alternately (every contender once per round, "
        "in an order shuffled each round), each turn started "
        "once the machine is quiet (≥ 90 % of its CPU idle over 50 ms, at most 3 s: what the turn before left "
        "running, such as dockerd removing a container, falls on nobody); "
        f"{elapsed / 60:.1f} min in all. Times are wall-clock seconds measured by the benchmark.",
    ]
    if settings.quick:
        shared = (f" and 2 (`--rivals`; skaffold dev on {settings.skaffold_artifacts} artifacts)"
                  if settings.shared_rivals else ", not in scenario 2 (`--rivals` adds them: about 2 minutes more)")
        lines += ["", f"Quick mode uses fewer repetitions ({settings.reps}, scenario 2: {settings.shared_reps}; "
                  "instead of at least 5), "
                  f"{settings.idle_seconds:.0f} s instead of 30 s of idle, and a smaller scale module "
                  f"({settings.scale_packages:,} packages / {settings.scale_files:,} files instead of "
                  "2,000 / 10,000): its numbers are indicative only. The rivals (ko, Skaffold, air) run in "
                  f"scenarios 1, 8 and 9 ({settings.rival_warmup} warm-up + {settings.rival_reps} rounds in 8 and 9)"
                  f"{shared} — the full run has them everywhere, skaffold dev on all 20 commands."]
    lines += ["", "Issue 20's scenarios are numbered here: its 1 is scenario 1, its 2 (a real module with "
              "dependencies) scenario 9, its 3 (the 20-command module) scenario 2, its 4 (bursts, kodata) "
              "scenario 8."]
    lines += ["", "## Targets", "", "| target | measured | |", "| --- | --- | --- |"]
    for result in results:
        for target in result.targets:
            lines.append(f"| {target.goal} | {target.measured} | **{target.verdict}** |")
        if result.error:
            lines.append(f"| scenario {result.number} ({result.title}) | error | **n/a** |")
    lines += ["", "## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in machine(context)]
    for result in results:
        lines += ["", f"## {result.number}. {result.title}", "", result.setup, ""]
        if result.error:
            lines += [f"**Failed:** {quote(result.error)}", ""]
        for table in result.tables:
            lines += [*_table(table), ""]
        for note in result.notes:
            lines += [f"- {note}"]
        if result.notes:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
