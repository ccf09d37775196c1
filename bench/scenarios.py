"""The five scenarios of issue 5. Each returns a `ScenarioResult`; contenders run alternately (A B A B …).

Every edit writes a token no other edit of the run writes, so no contender is ever served by another
one's entry in Go's build cache (with -trimpath, identical sources in two copies share cache entries).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import REPO, Context
from bench.generate import Shape, generate, set_shared_tag
from bench.measure import (
    BenchError,
    Line,
    Process,
    Series,
    cpu_seconds,
    fetch,
    free_port,
    kodev_watch_timing,
    median,
    memory_kb,
    pair_differences,
    pair_ratios,
    wait_for_text,
    wait_until,
)
from bench.results import ScenarioResult, Table, Target, millis, seconds, series_table

SERVER_MAIN = "cmd/server/main.go"
SERVER_LINE = "\t\tfmt.Fprint(w, body)\n"
INITIAL_TEXT = "Hello, kodev"
PAUSE = 0.3  # seconds between two contenders' turns, for the previous one's tail (log followers, docker)
# kodev watch's `go build` flags (-s -w: [watch] strip, the default): the floor and the shell loop use them too.
WATCH_BUILD_FLAGS = ("-trimpath", "-ldflags=-buildid= -s -w")
EVENTS_SCHEMA = "kodev.events/1"  # kodev runs with --json: its events, one JSON object per stdout line
_DELIVERY_WORDS = {"recreated": "restart", "started": "restart", "swapped": "swap"}  # as kodev's own line


def event_pattern(name: str) -> str:
    """A regex for the stdout line of one kodev event (its fields come in a fixed order: schema, event, ...)."""
    return rf'^\{{"schema": "{re.escape(EVENTS_SCHEMA)}", "event": "{re.escape(name)}"'


def parse_event(line: Line) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(line.text)
    if event.get("schema") != EVENTS_SCHEMA:
        raise BenchError(f"kodev speaks {event.get('schema')!r}, the benchmark reads {EVENTS_SCHEMA!r}")
    return event


def wait_event(process: Process, name: str, mark: int = 0, timeout: float = 120,
               where: Callable[[dict[str, Any]], bool] = lambda _e: True) -> tuple[Line, dict[str, Any]]:
    """The first `name` event after `mark` that `where` accepts, with its line (and the time it was read)."""
    count = 1
    while True:
        line = process.wait_for(event_pattern(name), mark=mark, count=count, timeout=timeout, stream="stdout")[-1]
        event = parse_event(line)
        if where(event):
            return line, event
        count += 1


def parse_result(event: dict[str, Any]) -> dict[str, float]:
    """A `command.result` event -> {"total", "go", "image", "load", "restart", "sent_mb"} (those it has)."""
    if event.get("event") != "command.result":
        return {}
    found = {"total": float(event["total_seconds"]), "image": float(event["image_seconds"])}
    if event["go_seconds"] is not None:
        found["go"] = float(event["go_seconds"])
    if event["outcome"] == "unchanged":
        return found
    if event["load_seconds"] is not None:
        found["load"] = float(event["load_seconds"])
    for delivered in event["delivered"]:
        word = _DELIVERY_WORDS.get(delivered["how"])
        if word:
            found[word] = found.get(word, 0.0) + float(delivered["seconds"])
    if event["bytes_sent"] is not None:
        found["sent_mb"] = event["bytes_sent"] / 1e6
    return found


def _median_of(rows: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in rows if key in row and row[key] == row[key]]  # NaN: not measured
    return statistics.median(values) if values else float("nan")


def _rounds(context: Context, warmup: int | None = None, reps: int | None = None) -> list[tuple[int, bool]]:
    """(round index, counted) for the warm-up rounds, then the counted ones."""
    warmup = context.settings.warmup if warmup is None else warmup
    reps = context.settings.reps if reps is None else reps
    return [(i, i >= warmup) for i in range(warmup + reps)]


def _write_config(module: Path, text: str) -> None:
    (module / "kodev.toml").write_text(text)


# --- contenders on examples/hello ----------------------------------------------------------------------

class HelloCopy:
    """A private copy of examples/hello whose server line can be edited to serve a token."""

    def __init__(self, context: Context, label: str) -> None:
        self.context = context
        self.label = label
        self.module = context.copy_example(label)
        self.original = (self.module / SERVER_MAIN).read_text()
        if SERVER_LINE not in self.original:
            raise BenchError(f"examples/hello/{SERVER_MAIN} no longer has the line the benchmark edits: "
                             f"{SERVER_LINE.strip()!r}")
        self.port = free_port()

    def edit(self, token: str) -> None:
        """A one-line change in cmd/server: the page ends with an HTML comment holding `token`."""
        changed = self.original.replace(SERVER_LINE, f'\t\tfmt.Fprint(w, body+"<!-- {token} -->")\n', 1)
        (self.module / SERVER_MAIN).write_text(changed)


class KodevServer(HelloCopy):
    """`kodev watch` on a copy of examples/hello, serving on 127.0.0.1:port over the host network."""

    def __init__(self, context: Context, label: str, base: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(context, label)
        self.env = env or {}
        self.service = context.name(label)
        base_line = f'base = "{base}"\n' if base else ""
        _write_config(self.module, (
            f'repo = "{context.repo}/{label}"\n{base_line}\n'
            f"[services.{self.service}]\n"
            'command = "./cmd/server"\n'
            f'args = ["-addr", "127.0.0.1:{self.port}"]\n'
            'network = "host"\n'
            "stop_timeout = 5\n"))
        context.containers.add(self.service)
        self.process: Process | None = None

    def start(self, timeout: float = 300) -> float:
        """Start kodev watch; seconds until the page is served and kodev says it is watching."""
        from bench.measure import kodev_argv

        self.process = Process(kodev_argv("watch", "--json"), self.module, env=self.env)
        self.context.processes.append(self.process)
        wait_for_text(self.port, INITIAL_TEXT, timeout=timeout)
        wait_event(self.process, "watching", timeout=timeout)
        return time.monotonic() - self.process.started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        """Seconds from the write until the page serves `token`; kodev's own breakdown of the rebuild."""
        assert self.process is not None
        mark = self.process.mark()
        cpu = cpu_seconds(self.process.pid)
        started = time.monotonic()
        self.edit(token)
        try:
            served = wait_for_text(self.port, token, timeout=120)
        except BenchError as exc:
            raise BenchError(f"{exc}\nkodev watch ({self.label}) printed:\n{self.process.tail()}") from None
        try:
            # kodev reports after the restart and after removing the replaced image, which a busy daemon
            # can make slow: the page is the measurement, the `command.result` event only its breakdown.
            _, result = wait_event(self.process, "command.result", mark=mark, timeout=120,
                                   where=lambda e: e["command"] == "server" and e["outcome"] == "rebuilt")
        except BenchError as exc:
            self.context.log(f"warning: no breakdown for this round: {exc}")
            return served - started, {}
        # kodev's own CPU for the round (its Python; not go's nor the daemon's): from the write to its event.
        return served - started, {**parse_result(result), "cpu": cpu_seconds(self.process.pid) - cpu}

    def stop(self) -> None:
        if self.process is not None:
            self.context.stop(self.process)
            self.process = None


class ShellLoop(HelloCopy):
    """The loop a user writes instead: on a .go change, go build + docker build + docker rm -f + docker run.

    Triggered by watchfiles with kodev's own settings (`kodev_watch_timing`: step 50 ms), in a thread of the
    benchmark, so the watcher's delay is counted for both. The Dockerfile is FROM a base holding exactly
    kodev's `static` layer, COPYing the binary and the command's kodata (dereferenced) where kodev puts them.
    """

    def __init__(self, context: Context, label: str, base: str) -> None:
        super().__init__(context, label)
        self.name = context.name(label)
        self.tag = f"{context.repo}/{label}:latest"
        self.build_dir = context.work / f"{label}-context"
        self.build_dir.mkdir()
        shutil.copytree(self.module / "cmd/server/kodata", self.build_dir / "kodata", symlinks=False)
        (self.build_dir / "Dockerfile").write_text(
            f"FROM {base}\n"
            "COPY kodata /var/run/ko\n"
            "COPY server /ko-app/server\n"
            "ENV KO_DATA_PATH=/var/run/ko\n"
            'ENTRYPOINT ["/ko-app/server"]\n')
        context.containers.add(self.name)
        self.done: queue.Queue[tuple[float, dict[str, float], BaseException | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, float]:
        """One pass of the loop; the seconds each step took."""
        steps: dict[str, float] = {}
        env = {**os.environ, "CGO_ENABLED": "0"}

        def step(name: str, argv: list[str], check: bool = True, **extra: Any) -> subprocess.CompletedProcess[str]:
            started = time.monotonic()
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, **extra)
            steps[name] = time.monotonic() - started
            if check and done.returncode != 0:
                raise BenchError(f"shell loop: {' '.join(argv)} failed: {(done.stderr or done.stdout)[-800:]}")
            return done

        step("go build", [self.context.go, "build", *WATCH_BUILD_FLAGS, "-o", str(self.build_dir / "server"),
                          "./cmd/server"], cwd=self.module, env=env)
        docker_env = {**os.environ} if self.context.buildkit else {**os.environ, "DOCKER_BUILDKIT": "0"}
        built = step("docker build", ["docker", "build", "-q", "-t", self.tag, str(self.build_dir)], env=docker_env)
        image_id = built.stdout.strip().splitlines()[-1] if built.stdout.strip() else ""
        if image_id.startswith("sha256:"):
            self.context.images.add(image_id)
        step("docker rm -f", ["docker", "rm", "-f", self.name], check=False)
        step("docker run", ["docker", "run", "-d", "--name", self.name, "--network", "host",
                            "--label", f"dev.kodevbench.run={self.context.uid}", self.tag,
                            "-addr", f"127.0.0.1:{self.port}"])
        return steps

    def start(self) -> None:
        self.run_once()
        wait_for_text(self.port, INITIAL_TEXT, timeout=60)
        self._thread = threading.Thread(target=self._watch, name="shell-loop", daemon=True)
        self._thread.start()
        time.sleep(0.3)  # let the watcher register its inotify watches

    def _watch(self) -> None:
        import watchfiles

        debounce, step = kodev_watch_timing()
        for _changes in watchfiles.watch(self.module, watch_filter=lambda _c, p: p.endswith(".go"),
                                         debounce=debounce, step=step, stop_event=self._stop, raise_interrupt=False):
            started = time.monotonic()
            try:
                self.done.put((started, self.run_once(), None))
            except BaseException as exc:
                self.done.put((started, {}, exc))

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        while not self.done.empty():
            self.done.get_nowait()
        started = time.monotonic()
        self.edit(token)
        served = wait_for_text(self.port, token, timeout=120)
        triggered, steps, error = self.done.get(timeout=120)
        if error is not None:
            raise BenchError(f"shell loop failed: {error}")
        return served - started, {"watcher": triggered - started, **steps}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=8)
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False, timeout=120)


class GoFloor(HelloCopy):
    """The floor: `go build` alone (kodev's flags) for the same change, timed from the write."""

    def __init__(self, context: Context, label: str) -> None:
        super().__init__(context, label)
        self.out = context.work / f"{label}-out"
        self.out.mkdir()

    def build(self) -> None:
        done = subprocess.run([self.context.go, "build", *WATCH_BUILD_FLAGS, "-o", f"{self.out}/",
                               "./cmd/server"], cwd=self.module, capture_output=True, text=True, check=False,
                              env={**os.environ, "CGO_ENABLED": "0"}, timeout=300)
        if done.returncode != 0:
            raise BenchError(f"go build failed in {self.module}: {done.stderr[-800:]}")

    def measure(self, token: str) -> float:
        started = time.monotonic()
        self.edit(token)
        self.build()
        return time.monotonic() - started


def static_base(context: Context) -> str:
    """kodev's `static` base layer, imported into the daemon: the shell loop's FROM, same content."""
    ref = f"{context.repo}/static-base:latest"
    if ref in context.images:
        return ref
    from kodev.image.base import static

    layer = static().layers[0]
    context.docker("import", "--change", "USER 65532",
                   "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "--change", "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", str(layer.path), ref)
    context.images.add(ref)
    return ref


# --- scenario 1 ----------------------------------------------------------------------------------------

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
        for index, counted in _rounds(context):
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
        ["watcher → build starts", "(in the next row)", millis(_median_of(shell_steps, "watcher"))],
        ["kodev: edit to serving − its 'rebuilt in' (watcher, binary layer, server start)",
         millis(_median_of(kodev_stages, "outside")), "—"],
        ["go build", millis(_median_of(kodev_stages, "go")), millis(_median_of(shell_steps, "go build"))],
        ["image (kodev) / docker build", millis(_median_of(kodev_stages, "image")),
         millis(_median_of(shell_steps, "docker build"))],
        ["load (kodev)", millis(_median_of(kodev_stages, "load")), "—"],
        ["swap (kodev; the load follows, off the path to serving)", millis(_median_of(kodev_stages, "swap")), "—"],
        ["restart (kodev) / docker rm -f + run", millis(_median_of(kodev_stages, "restart")),
         millis(_median_of(shell_steps, "docker rm -f") + _median_of(shell_steps, "docker run"))],
        ["kodev's own 'rebuilt in'", seconds(_median_of(kodev_stages, "total")), "—"],
        ["CPU of the kodev process itself (not go, not dockerd)", millis(_median_of(kodev_stages, "cpu")), "—"],
        ["sent to the daemon", f"{_median_of(kodev_stages, 'sent_mb'):.1f} MB", "(build context)"],
    ]))
    result.targets.append(Target("edit to serving: kodev's overhead over the `go build` floor ≤ 80 ms (median; "
                                 "the binary swapped in place)",
                                 millis(overhead), overhead <= 0.080 if overhead == overhead else None))
    result.targets.append(Target("edit to serving: kodev ≤ 0.55x the shell loop (median of per-pair ratios)",
                                 f"{ratio:.2f}x", ratio <= 0.55 if ratio == ratio else None))
    return result


# --- the generated 20-command module -------------------------------------------------------------------

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


def _commands_toml(shape: Shape, skip: frozenset[str] = frozenset()) -> str:
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
        "artifacts watches `**/*.go`).")
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
    _write_config(mod_a, f'repo = "{context.repo}/s2-kodev"\n\n' + _commands_toml(shape))
    _write_config(mod_b, f'repo = "{context.repo}/s2-glob"\n\n' + _commands_toml(shape))
    a_series, b_series = Series("kodev watch (affected only)"), Series("kodev pipeline, all commands (glob)")
    counts: list[list[str]] = []
    b_counts: list[int] = []
    a_go: list[float] = []
    context.log("scenario 2: first builds of both contenders (20 commands each)")
    a = context.kodev(mod_a, "watch", "--json")
    b = context.python(mod_b, "bench.globwatch", *shape.command_dirs)
    try:
        wait_event(a, "watching", timeout=600)
        b.wait_for(r"^ready ", timeout=600, stream="stdout")
        time.sleep(PAUSE)
        for index, counted in _rounds(context, settings.shared_warmup, settings.shared_reps):
            seconds_a, names, go_a = kodev_round(a, mod_a, f"a-{context.uid}-{index}")
            time.sleep(PAUSE)
            mark = b.mark()
            started = time.monotonic()
            set_shared_tag(mod_b, f"b-{context.uid}-{index}")
            line = b.wait_for(r"^built \d+ ", mark=mark, timeout=300, stream="stdout")[0]
            seconds_b = line.at - started
            time.sleep(PAUSE)
            context.log(f"scenario 2 round {index + 1}{'' if counted else ' (warm-up)'}: kodev {seconds_a:.3f}s "
                        f"({len(names)} commands), all {seconds_b:.3f}s ({line.text.split()[1]} commands)")
            if counted:
                a_series.values.append(seconds_a)
                b_series.values.append(seconds_b)
                counts.append(sorted(names))
                b_counts.append(int(line.text.split()[1]))
                a_go.append(go_a)
        context.peaks["scenario 2 kodev watch (20 commands, all rounds)"] = memory_kb(a.pid) / 1024
    finally:
        context.stop(a)
        context.stop(b)
    ratio = median(pair_ratios(a_series, b_series))
    table = series_table([a_series, b_series])
    table.headers.append("commands rebuilt")
    table.rows[0].append(", ".join(sorted({str(len(c)) for c in counts})) or "—")
    table.rows[1].append(", ".join(sorted({str(n) for n in b_counts})) or "—")
    result.tables.append(table)
    result.tables.append(Table(["derived", "value"], [
        ["kodev / all (median of per-pair ratios)", f"{ratio:.2f}x"],
        ["kodev's `go` time (median)", seconds(median(a_go))],
        ["commands kodev rebuilt", "; ".join(sorted({", ".join(c) for c in counts})) or "—"],
    ]))
    exact = bool(counts) and all(c == affected for c in counts)
    result.targets.append(Target(f"the {len(shape.commands)}-command module rebuilds exactly the affected "
                                 f"commands ({', '.join(affected)})",
                                 f"{sorted({len(c) for c in counts})} commands per round", exact if counts else None))
    return result


# --- scenario 3 ----------------------------------------------------------------------------------------

class _RandomReader:
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int = -1) -> bytes:
        count = self.left if size < 0 else min(size, self.left)
        self.left -= count
        return os.urandom(count)


def big_base(context: Context, megabytes: int) -> str:
    """An image of `megabytes` MB of random data (one layer), made with `docker import`."""
    ref = f"{context.repo}/base{megabytes}:latest"
    path = context.work / "big-base.tar"
    size = megabytes * 1_000_000
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("data", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("data/random.bin")
        info.size = size
        tar.addfile(info, _RandomReader(size))
    context.docker("import", str(path), ref)
    context.images.add(ref)
    path.unlink()
    return ref


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
        for index, counted in _rounds(context):
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
        ["kodev 'rebuilt in'", seconds(_median_of(stages[0], "total")), seconds(_median_of(stages[1], "total"))],
        ["image", millis(_median_of(stages[0], "image")), millis(_median_of(stages[1], "image"))],
        ["load", millis(_median_of(stages[0], "load")), millis(_median_of(stages[1], "load"))],
        ["restart", millis(_median_of(stages[0], "restart")), millis(_median_of(stages[1], "restart"))],
        ["sent to the daemon", f"{_median_of(stages[0], 'sent_mb'):.1f} MB",
         f"{_median_of(stages[1], 'sent_mb'):.1f} MB"],
        [f"{megabytes} MB / scratch (median of per-pair ratios)", "", f"{ratio:.2f}x"],
    ]))
    result.targets.append(Target(f"{megabytes} MB base: ≤ 1.2x the scratch-base time (median of per-pair ratios)",
                                 f"{ratio:.2f}x", ratio <= 1.2 if ratio == ratio else None))
    return result


# --- scenario 4 ----------------------------------------------------------------------------------------

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
    config += _commands_toml(shape, skip=frozenset(shape.command_dirs[:services]))
    _write_config(module, config)
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


SCENARIOS: dict[int, Callable[[Context], ScenarioResult]] = {
    1: edit_to_serving,
    2: shared_package,
    3: base_size,
    4: footprint,
    5: scale,
}
