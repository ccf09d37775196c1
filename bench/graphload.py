"""Scenario 5's measuring process: kodev's package graph of a (large) module, timed and weighed.

`python -m bench.graphload MODULE_DIR REPS [BATCH]` prints one JSON object: the wall time of
`kodev.gomod.load_graph` (median of REPS after a warm-up), of the `go list` it runs (alone, same
arguments), the memory Python allocates while loading it (tracemalloc peak) and keeps for it, this
process's peak RSS, and how long `kodev.affected.decide` takes for one changed file and for a batch of
BATCH files (default 1,000: a branch switch).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def _timed(action: object, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str]) -> int:
    from kodev import gomod
    from kodev.affected import FileChange, decide
    from kodev.gotool import find_go

    root = Path(argv[0]).resolve()
    reps = int(argv[1]) if len(argv) > 1 else 3
    batch_size = int(argv[2]) if len(argv) > 2 else 1000
    go = find_go(None, {})
    commands = gomod.resolve_commands(go, ["./cmd/..."], root)
    rss_before = _status_kb("VmRSS")

    graph = gomod.load_graph(go, commands, root)  # warm-up: the OS file cache, go's own caches
    load_times = _timed(lambda: gomod.load_graph(go, commands, root), reps)
    fields = getattr(gomod, "_GRAPH_FIELDS", "ImportPath,Name,Dir,Module,Error,Standard,Deps,Imports,GoFiles")
    args = ["list", "-e", "-deps", f"-json={fields}", "--", *(c.import_path for c in commands)]
    golist_times = _timed(lambda: go.run(args, cwd=root), reps)

    del graph
    tracemalloc.start()
    base_current, _ = tracemalloc.get_traced_memory()
    graph = gomod.load_graph(go, commands, root)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    files = sorted(p for package in graph.packages.values() for p in (package.dir / n for n in package.build_files))
    one = [FileChange(files[len(files) // 2], "modified")]
    batch = [FileChange(p, "modified") for p in files[:: max(1, len(files) // batch_size)][:batch_size]]
    decide_one = _timed(lambda: decide(one, graph, {}), max(reps, 5))
    decide_batch = _timed(lambda: decide(batch, graph, {}), 1)

    result = {
        "packages": len(graph.packages),
        "files": sum(len(p.build_files) for p in graph.packages.values()),
        "commands": len(commands),
        "load_graph_s": load_times,
        "go_list_s": golist_times,
        "tracemalloc_peak_mb": (peak - base_current) / 1e6,
        "graph_kept_mb": (kept - base_current) / 1e6,
        "rss_before_mb": rss_before / 1024,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
        "decide_one_ms": statistics.median(decide_one) * 1000,
        "decide_batch_ms": decide_batch[0] * 1000,
        "decide_batch_files": len(batch),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
