"""`python -m bench [--quick] [--only 1,3] [--reps N] [--out FILE]`: run the scenarios, print and write the report."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from bench.context import Context, Settings
from bench.measure import BenchError
from bench.results import ScenarioResult

RESULTS = Path(__file__).resolve().parent / "results.md"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=(
        "Benchmark kodev: edit-to-serving against the ko loop, skaffold dev, air, a shell loop and the go build "
        "floor, shared-package rebuilds, base size, footprint, scale, Compose, swaps, bursts and a real module with "
        "dependencies (issues 5 and 20), and rollouts on a real Kubernetes cluster (issue 24). Needs go and a Docker "
        "daemon (`. scripts/env.sh`)."))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, short idle, smaller scale "
                        "module, no rivals in scenario 2 (unless --rivals): about 7 minutes on 2 cores")
    parser.add_argument("--only", default="", metavar="1,2,…", help="run only these scenarios (1-12)")
    parser.add_argument("--reps", type=int, default=None, help="counted repetitions per contender "
                        "(default: 7, scenario 2: 5; quick: 3, scenario 2: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"markdown report (default: {RESULTS})")
    parser.add_argument("--rivals", action="store_true", help="quick mode: run the ko loop and skaffold dev in "
                        "scenario 2 too (about 2 more minutes; the full run always does)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (generated modules, logs)")
    args = parser.parse_args(argv)

    from bench.bursts import bursts_and_kodata
    from bench.composebench import compose_project  # these build on scenarios' contenders: registered here
    from bench.debugbench import debug_sessions
    from bench.depsbench import real_module
    from bench.kubebench import cluster_rollouts
    from bench.proxybench import proxy_reloads
    from bench.scenarios import SCENARIOS as ON_HELLO
    from bench.swap import swap_in_place

    SCENARIOS = {**ON_HELLO, 6: compose_project, 7: swap_in_place, 8: bursts_and_kodata, 9: real_module,
                 10: debug_sessions, 11: proxy_reloads, 12: cluster_rollouts}

    wanted = [int(n) for n in args.only.split(",") if n.strip()] if args.only else sorted(SCENARIOS)
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        parser.error(f"no scenario {unknown}; there are {sorted(SCENARIOS)}")
    settings = Settings.for_mode(args.quick, args.reps, rivals=args.rivals)
    # kodev gives its `go` GOGC and GOMEMLIMIT (kodev/gotool.py): in the environment of every contender
    # (ko, skaffold, air, the floor, the shell loop), so that each Go toolchain collects garbage alike.
    from kodev.gotool import toolchain_gc

    os.environ.update(toolchain_gc(os.environ))
    started = time.monotonic()
    try:
        context = Context.open(settings, keep=args.keep)
    except Exception as exc:
        print(f"bench: cannot start: {exc}", file=sys.stderr)
        return 2
    context.log(f"every contender's go runs with GOGC={os.environ.get('GOGC')} "
                f"GOMEMLIMIT={os.environ.get('GOMEMLIMIT', 'unset')}")
    context.log(f"{'quick' if settings.quick else 'full'} mode: scenarios {wanted}, {settings.warmup} warm-up + "
                f"{settings.reps} counted repetitions; work directory {context.work}")
    if settings.quick and not settings.shared_rivals and 2 in wanted:
        context.log("quick mode: scenario 2 runs without the ko loop and skaffold dev (`--rivals` adds them, about "
                    "2 minutes more); the rivals run in scenarios 1, 8 and 9")
    results: list[ScenarioResult] = []
    failed = False
    try:
        for number in wanted:
            scenario_started = time.monotonic()
            try:
                result = SCENARIOS[number](context)
            except (BenchError, Exception) as exc:
                failed = True
                context.log(f"scenario {number} failed: {exc}")
                if not isinstance(exc, BenchError):
                    traceback.print_exc()
                title = (SCENARIOS[number].__doc__ or SCENARIOS[number].__name__).splitlines()[0]
                result = ScenarioResult(number, title, "", error=str(exc).splitlines()[0][:300])
            results.append(result)
            for target in result.targets:
                context.log(f"target: {target.goal} — measured {target.measured}: {target.verdict}")
            context.log(f"scenario {number} took {time.monotonic() - scenario_started:.1f}s")
        from bench.report import render

        report = render(context, results, time.monotonic() - started, argv)
    finally:
        context.close()
    args.out.write_text(report)
    print(report)
    context.log(f"wrote {args.out} ({time.monotonic() - started:.1f}s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
