"""Scenario: edit to serving of one service in a Compose project (examples/compose), kodev vs what a Compose
user writes without it.

Contenders alternate on their own copies of the example, each its own project on its own ports:
- `kodev watch -f compose.yaml` (api and worker are `ko://` services; store is a `build:` service);
- the loop a Compose user writes: a `.go` watcher (kodev's batching and settings) -> `go build` of the api
  with kodev's flags -> `docker compose up -d --build --no-deps api`, where an override gives api a
  `FROM <kodev's static base> / COPY` Dockerfile — the same image layout, built by Compose.
- the same `go build` watcher feeding `docker compose watch` (`action: rebuild` on the api's build
  context): Compose notices the new binary, rebuilds the image and recreates the container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from bench.contenders import PAUSE, WATCH_BUILD_FLAGS, rounds, static_base, wait_event
from bench.context import Context
from bench.measure import BenchError, Process, Series, free_port, kodev_argv, median, pair_ratios, wait_for_text
from bench.results import ScenarioResult, Table, millis, series_table

QUOTES = "internal/quotes/quotes.go"
QUOTE = "Clear is better than clever."


class Stack:
    """A copy of examples/compose with free ports and its store built; `edit` changes only the api's quote."""

    def __init__(self, context: Context, label: str) -> None:
        self.context = context
        self.project = context.name(label)
        self.dir = context.copy_example(label, "compose")
        self.ports = {s: free_port() for s in ("api", "worker", "store")}
        self.env = {**os.environ, **{f"{s.upper()}_PORT": str(p) for s, p in self.ports.items()}}
        done = subprocess.run([context.go, "build", "-o", "store", "."], cwd=self.dir / "store", capture_output=True,
                              text=True, env={**self.env, "CGO_ENABLED": "0"}, check=False)
        if done.returncode != 0:
            raise BenchError(f"cannot build the example's store: {done.stderr[-500:]}")
        (self.dir / "kodev.toml").write_text(f'repo = "{context.repo}/{label}"\n')
        self.original = (self.dir / QUOTES).read_text()
        if QUOTE not in self.original:
            raise BenchError(f"examples/compose/{QUOTES} no longer has the quote the benchmark edits")

    def edit(self, token: str) -> None:
        (self.dir / QUOTES).write_text(self.original.replace(QUOTE, f"{QUOTE} {token}", 1))

    def compose(self, cli: list[str], *args: str, files: tuple[str, ...] = ("compose.yaml",)) -> None:
        argv = [*cli, *(a for f in files for a in ("-f", f)), "-p", self.project, *args]
        done = subprocess.run(argv, cwd=self.dir, env=self.env, capture_output=True, text=True, check=False,
                              timeout=300)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed: {done.stderr[-800:]}")


class KodevStack(Stack):
    def start(self) -> None:
        self.process = Process(kodev_argv("watch", "-f", "compose.yaml", "-p", self.project, "--json"), self.dir,
                               env={k: v for k, v in self.env.items() if k.endswith("_PORT")})
        self.context.processes.append(self.process)
        wait_for_text(self.ports["api"], QUOTE, timeout=600)
        wait_event(self.process, "watching", timeout=600)

    def measure(self, token: str) -> float:
        started = time.monotonic()
        self.edit(token)
        return wait_for_text(self.ports["api"], token, timeout=120) - started


class ComposeLoop(Stack):
    """go build + `docker compose up -d --build --no-deps api` on every .go change (the user's own loop)."""

    def __init__(self, context: Context, label: str, base: str) -> None:
        super().__init__(context, label)
        build = self.dir / "api-image"
        build.mkdir()
        (build / "Dockerfile").write_text(f'FROM {base}\nCOPY api /ko-app/api\nENTRYPOINT ["/ko-app/api"]\n')
        (self.dir / "compose.build.yaml").write_text(
            "services:\n  api:\n    image: " + f"{context.repo}/{label}-api:latest\n"
            "    build: ./api-image\n  worker:\n    image: " + f"{context.repo}/{label}-worker:latest\n"
            "    build: ./worker-image\n")
        worker = self.dir / "worker-image"
        worker.mkdir()
        (worker / "Dockerfile").write_text(f'FROM {base}\nCOPY worker /ko-app/worker\nENTRYPOINT ["/ko-app/worker"]\n')
        self.files: tuple[str, ...] = ("compose.yaml", "compose.build.yaml")
        self.cli = [*context.compose]
        self.done: list[float] = []
        self._stop = threading.Event()

    def _go_build(self, command: str, into: Path) -> None:
        done = subprocess.run([self.context.go, "build", *WATCH_BUILD_FLAGS, "-o", str(into / command),
                               f"./cmd/{command}"], cwd=self.dir, capture_output=True, text=True, check=False,
                              env={**self.env, "CGO_ENABLED": "0"}, timeout=300)
        if done.returncode != 0:
            raise BenchError(f"go build ./cmd/{command} failed: {done.stderr[-500:]}")

    def start(self) -> None:
        self._go_build("api", self.dir / "api-image")
        self._go_build("worker", self.dir / "worker-image")
        self.compose(self.cli, "up", "-d", "--build", files=self.files)
        wait_for_text(self.ports["api"], QUOTE, timeout=300)
        self._thread = threading.Thread(target=self._watch, daemon=True, name="compose-loop")
        self._thread.start()
        time.sleep(0.3)  # let the watcher register its watches

    def _watch(self) -> None:
        from bench.measure import saved_batches

        for _changes in saved_batches(self.dir, lambda _c, p: p.endswith(".go"), self._stop):
            self._go_build("api", self.dir / "api-image")
            self.after_build()

    def after_build(self) -> None:
        self.compose(self.cli, "up", "-d", "--build", "--no-deps", "api", files=self.files)

    def measure(self, token: str) -> float:
        started = time.monotonic()
        self.edit(token)
        return wait_for_text(self.ports["api"], token, timeout=180) - started

    def stop(self) -> None:
        self._stop.set()


class ComposeWatch(ComposeLoop):
    """The same go build watcher, with `docker compose watch` (action: rebuild) doing the rest."""

    def __init__(self, context: Context, label: str, base: str) -> None:
        super().__init__(context, label, base)
        (self.dir / "compose.watch.yaml").write_text(
            "services:\n  api:\n    develop:\n      watch:\n        - action: rebuild\n          path: ./api-image\n")
        self.files = (*self.files, "compose.watch.yaml")

    def start(self) -> None:
        super().start()
        argv = [*self.cli, *(a for f in self.files for a in ("-f", f)), "-p", self.project, "watch", "--no-up", "api"]
        self.watcher = Process(argv, self.dir, env={k: v for k, v in self.env.items() if k.endswith("_PORT")})
        self.context.processes.append(self.watcher)
        self.watcher.wait_for("Watch enabled", timeout=60)

    def after_build(self) -> None:
        pass  # docker compose watch sees the new binary in the build context

    def stop(self) -> None:
        super().stop()
        self.context.stop(self.watcher)


def compose_project(context: Context) -> ScenarioResult:
    """Compose project: one service's edit to serving (examples/compose)"""
    result = ScenarioResult(
        6, "Compose project: one service's edit to serving (examples/compose)",
        "A one-line change in `internal/quotes` (imported by the api only), timed from the write until the "
        "api's page on 127.0.0.1 shows it. Contenders alternate, each its own copy and project: `kodev watch "
        "-f compose.yaml` (it swaps the new binary into the api's container, which Compose started with "
        "kodev's supervisor; the image follows); the loop a Compose user writes — a `.go` watcher with "
        "kodev's settings, `go build` with kodev's flags, `docker compose up -d --build --no-deps api` of a "
        "`FROM base / COPY` Dockerfile (the base: kodev's static layer); and the same watcher and `go build` "
        "feeding `docker compose watch` (`action: rebuild` on that Dockerfile's context).")
    result.notes.append("No target. The other loops pay Compose's own `up -d --no-deps` recreate (about "
                        "0.3-0.4 s here) on top of the `docker build`; kodev pays neither (`docker compose watch` "
                        "adds its own rebuild).")
    base = static_base(context)
    kodev = KodevStack(context, "s6-kodev")
    loop = ComposeLoop(context, "s6-loop", base)
    watch = ComposeWatch(context, "s6-cwatch", base)
    series = [Series("kodev watch -f"), Series("go build + compose up --build"),
              Series("go build + docker compose watch (rebuild)")]
    try:
        kodev.start()
        loop.start()
        watch.start()
        for index, counted in rounds(context):
            token = f"{context.uid}-{index}"
            k = kodev.measure(f"kodev-{token}")
            time.sleep(PAUSE)
            c = loop.measure(f"loop-{token}")
            time.sleep(PAUSE)
            w = watch.measure(f"watch-{token}")
            time.sleep(PAUSE)
            context.log(f"scenario 6 round {index + 1}{'' if counted else ' (warm-up)'}: kodev {k:.3f}s, "
                        f"compose loop {c:.3f}s, compose watch {w:.3f}s")
            if counted:
                for one, value in zip(series, (k, c, w), strict=True):
                    one.values.append(value)
    finally:
        loop.stop()
        if getattr(watch, "watcher", None) is not None:
            watch.stop()
        if getattr(kodev, "process", None) is not None:
            context.stop(kodev.process)
        for stack in (kodev, loop, watch):
            files = stack.files if isinstance(stack, ComposeLoop) else ("compose.yaml",)
            try:
                stack.compose([*context.compose], "down", "--volumes", "--timeout", "2", files=files)
            except BenchError as exc:
                context.log(f"warning: {exc}")
        shutil.rmtree(loop.dir / "api-image", ignore_errors=True)
    result.tables.append(series_table(series))
    result.tables.append(Table(["derived", "value"], [
        ["kodev / go build + compose up --build (per-pair ratio)", f"{median(pair_ratios(series[0], series[1])):.2f}x"],
        ["kodev / go build + compose watch (per-pair ratio)", f"{median(pair_ratios(series[0], series[2])):.2f}x"],
        ["compose up --build − kodev (medians)", millis(series[1].median - series[0].median)]]))
    return result
