"""What the hello scenarios share: kodev's events as the benchmark reads them, the contenders (kodev watch,
the shell loop, the `go build` floor) on private copies of examples/hello, and the bases they run on.

Every edit writes a token no other edit of the run writes, so no contender is ever served by another
one's entry in Go's build cache (with -trimpath, identical sources in two copies share cache entries).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.measure import (
    BenchError,
    Line,
    Process,
    cpu_seconds,
    free_port,
    wait_for_text,
)
from bench.saveloop import SaveLoop

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


def median_of(rows: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in rows if key in row and row[key] == row[key]]  # NaN: not measured
    return statistics.median(values) if values else float("nan")


def rounds(context: Context, warmup: int | None = None, reps: int | None = None) -> list[tuple[int, bool]]:
    """(round index, counted) for the warm-up rounds, then the counted ones."""
    warmup = context.settings.warmup if warmup is None else warmup
    reps = context.settings.reps if reps is None else reps
    return [(i, i >= warmup) for i in range(warmup + reps)]


def write_config(module: Path, text: str) -> None:
    (module / "kodev.toml").write_text(text)


def copy_module_dir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


# --- contenders on examples/hello ----------------------------------------------------------------------

class HelloCopy:
    """A private copy of examples/hello whose server line can be edited to serve a token."""

    def __init__(self, context: Context, label: str, source: Path | None = None) -> None:
        self.context = context
        self.label = label
        # `source`: another module laid out the same way (cmd/server/main.go holding SERVER_LINE).
        self.module = context.copy_example(label) if source is None else copy_module_dir(source, context.work / label)
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
                 env: dict[str, str] | None = None, source: Path | None = None, command: str = "watch",
                 service_lines: str = "") -> None:
        super().__init__(context, label, source)
        self.env = env or {}
        self.command = command  # `watch`, or `debug` (the same loop under Delve)
        self.service = context.name(label)
        base_line = f'base = "{base}"\n' if base else ""
        write_config(self.module, (
            f'repo = "{context.repo}/{label}"\n{base_line}\n'
            f"[services.{self.service}]\n"
            'command = "./cmd/server"\n'
            f'args = ["-addr", "127.0.0.1:{self.port}"]\n'
            'network = "host"\n'
            "stop_timeout = 5\n"
            f"{service_lines.replace('@PORT@', str(self.port))}"))  # @PORT@: where the server listens
        context.containers.add(self.service)
        self.process: Process | None = None

    def start(self, timeout: float = 300) -> float:
        """Start kodev watch (or debug); seconds until the page is served and kodev says it is watching."""
        from bench.measure import kodev_argv

        self.process = Process(kodev_argv(self.command, "--json"), self.module, env=self.env)
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

    Triggered by saves batched as kodev watch batches them (`saved_batches`), in a thread of the benchmark,
    so the watcher's delay is counted for both. The Dockerfile is FROM a base holding exactly kodev's
    `static` layer, COPYing the binary and the command's kodata (dereferenced) where kodev puts them.
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
        self.loop = SaveLoop(self.module, self.run_once, lambda _c, p: p.endswith(".go"), "shell loop")

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

    def start(self) -> float:
        started = time.monotonic()
        self.run_once()
        wait_for_text(self.port, INITIAL_TEXT, timeout=60)
        served = time.monotonic() - started
        self.loop.start()
        return served

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        started, served, triggered, steps = self.loop.measure(lambda: self.edit(token), self.port, token)
        return served - started, {"watcher": triggered - started, **steps}

    def stop(self) -> None:
        self.loop.stop()
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False, timeout=120)


class GoFloor(HelloCopy):
    """The floor: `go build` alone (kodev's flags) for the same change, timed from the write."""

    def __init__(self, context: Context, label: str, source: Path | None = None) -> None:
        super().__init__(context, label, source)
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

class RandomReader:
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
        tar.addfile(info, RandomReader(size))
    context.docker("import", str(path), ref)
    context.images.add(ref)
    path.unlink()
    return ref
