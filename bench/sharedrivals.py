"""Scenario 2's rivals on the generated 20-command module: the ko loop building every command (`ko build` of
all of them, as `ko apply` rebuilds every image it resolves) and `skaffold dev` with one ko artifact per
command (its default watch, `**/*.go`, makes a shared-package edit rebuild them all).

Each is timed from the write of `internal/shared` until every image is in the daemon: ko build's exit for
the ko loop; Skaffold's last `Build [...] succeeded` line (its deploy, which runs one container per image,
follows and is reported apart).
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.contenders import PAUSE
from bench.context import Context
from bench.dockershim import DockerShim
from bench.generate import Shape, set_shared_tag
from bench.measure import BenchError, Process, saved_batches
from bench.rivalmarks import SKAFFOLD_WATCHING, strip_ansi
from bench.rivals import (
    LDFLAGS,
    SKAFFOLD_GLOBAL,
    SKAFFOLD_NETWORK,
    _quote,
    remove_repository,
    run_timed,
    skaffold_argv,
    skaffold_artifact,
    skaffold_config,
)

SUCCEEDED = r"^Build \[\S+\] succeeded"


def ko_all_yaml(command_dirs: list[str]) -> str:
    """One build per command, each with kodev watch's ldflags (ko adds -trimpath)."""
    return "builds:\n" + "".join(
        f"- id: {d.rsplit('/', 1)[-1]}\n  main: {d}\n  env: [CGO_ENABLED=0]\n  ldflags: {_quote(LDFLAGS)}\n"
        for d in command_dirs)


def ko_references(stdout: str) -> list[str]:
    """The images `ko build` printed on stdout, one per command."""
    return [line.strip() for line in stdout.splitlines() if line.strip().startswith("ko.local/")]


def last_success(lines: list[str]) -> int | None:
    """The index of the last `Build [...] succeeded` line, or None."""
    import re

    found = [i for i, text in enumerate(lines) if re.search(SUCCEEDED, strip_ansi(text))]
    return found[-1] if found else None


@dataclass
class RivalRun:
    """One rival's rounds: seconds to all images published, by round; its error, if it stopped."""

    name: str
    values: dict[int, float] = field(default_factory=dict)
    deployed: dict[int, float] = field(default_factory=dict)  # Skaffold: write -> its deploy done
    built: dict[int, int] = field(default_factory=dict)  # images per round
    error: str = ""
    first: float | None = None


class KoAll:
    """watchfiles on `*.go` (kodev's settings) -> `ko build` of every command into the daemon."""

    def __init__(self, context: Context, module: Path, ko: Path, base: str, commands: list[str]) -> None:
        self.context = context
        self.module = module
        self.ko = ko
        self.commands = commands
        (module / ".ko.yaml").write_text(ko_all_yaml(commands))
        self.repo = f"ko.local/{context.repo}/{module.name}"
        self.env = {"KO_DOCKER_REPO": self.repo, "KO_DEFAULTBASEIMAGE": base, "KO_GO_PATH": context.go}
        self.done: queue.Queue[tuple[float, int, BaseException | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def argv(self) -> list[str]:
        return [str(self.ko), "build", "--base-import-paths", "--tags", self.context.uid, *self.commands]

    def run_once(self) -> int:
        built, _ended = run_timed(self.argv(), self.module, self.env, timeout=1800)
        if built.popen.returncode != 0:
            raise BenchError(f"ko build exited {built.popen.returncode}:\n{built.tail()}")
        return len(ko_references("\n".join(line.text for line in built.since(0, stream="stdout"))))

    def start(self) -> float:
        started = time.monotonic()
        self.run_once()
        self._thread = threading.Thread(target=self._watch, name="ko-all", daemon=True)
        self._thread.start()
        time.sleep(0.3)
        return time.monotonic() - started

    def _watch(self) -> None:
        for _changes in saved_batches(self.module, lambda _c, p: p.endswith(".go"), self._stop):
            try:
                count = self.run_once()
                self.done.put((time.monotonic(), count, None))
            except BaseException as exc:
                self.done.put((time.monotonic(), 0, exc))

    def round(self, tag: str) -> tuple[float, float | None, int]:
        while not self.done.empty():
            self.done.get_nowait()
        started = time.monotonic()
        set_shared_tag(self.module, tag)
        ended, count, error = self.done.get(timeout=1800)
        if error is not None:
            raise BenchError(f"ko loop (all commands) failed: {error}")
        return ended - started, None, count

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for command in self.commands:
            remove_repository(f"{self.repo}/{command.rsplit('/', 1)[-1]}")


class SkaffoldAll:
    """`skaffold dev` with one ko artifact per command, the docker deployer through the shim."""

    def __init__(self, context: Context, module: Path, skaffold: Path, base: str, registry_host: str,
                 commands: list[str]) -> None:
        self.context = context
        self.module = module
        self.skaffold = skaffold
        self.registry_host = registry_host
        self.images = [context.name(f"{module.name}-{d.rsplit('/', 1)[-1]}") for d in commands]
        artifacts = [skaffold_artifact(image, base, d) for image, d in zip(self.images, commands, strict=True)]
        (module / "skaffold.yaml").write_text(skaffold_config("gen", artifacts, self.images))
        self.settings = context.work / f"{module.name}-skaffold-config.yaml"
        self.settings.write_text(SKAFFOLD_GLOBAL)
        self.shim: DockerShim | None = None
        self.process: Process | None = None

    def start(self) -> float:
        self.shim = DockerShim(self.context.work / f"{self.module.name}.sock", SKAFFOLD_NETWORK, None)
        env = {"DOCKER_HOST": self.shim.docker_host, "KO_GO_PATH": self.context.go, "SKAFFOLD_UPDATE_CHECK": "false"}
        argv = skaffold_argv(self.skaffold, self.settings, self.context.work / f"{self.module.name}-skaffold-cache",
                             self.registry_host)
        self.process = Process(argv, self.module, env=env)
        self.context.processes.append(self.process)
        self.process.wait_for(SKAFFOLD_WATCHING, timeout=1800, stream="stdout")
        return time.monotonic() - self.process.started

    def round(self, tag: str) -> tuple[float, float | None, int]:
        assert self.process is not None
        mark = self.process.mark()
        started = time.monotonic()
        set_shared_tag(self.module, tag)
        try:
            watching = self.process.wait_for(SKAFFOLD_WATCHING, mark=mark, timeout=1800, stream="stdout")[0]
        except BenchError as exc:
            raise BenchError(f"{exc}\nskaffold dev printed:\n{self.process.tail()}") from None
        lines = self.process.since(mark, stream="stdout")
        texts = [line.text for line in lines]
        last = last_success(texts)
        if last is None:
            raise BenchError(f"skaffold dev rebuilt nothing:\n{self.process.tail()}")
        count = sum(1 for text in texts[: last + 1] if "succeeded" in strip_ansi(text))
        return lines[last].at - started, watching.at - started, count

    def stop(self) -> None:
        if self.process is not None:
            self.context.stop(self.process)
            self.process = None
        if self.shim is not None:
            for name in self.shim.containers:
                if name:
                    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False, timeout=120)
            self.shim.close()
            self.shim = None
        for image in self.images:
            remove_repository(image)


Rival = KoAll | SkaffoldAll


def run_round(context: Context, rivals: list[tuple[RivalRun, Rival | None]], index: int, counted: bool) -> str:
    """One turn each; what to log."""
    said = []
    for run, rival in rivals:
        if rival is None or run.error:
            continue
        try:
            value, deployed, count = rival.round(f"{run.name.split()[0]}-{context.uid}-{index}")
        except Exception as exc:
            run.error = f"round {index + 1}: {exc}"
            said.append(f"{run.name} FAILED")
            continue
        said.append(f"{run.name} {value:.3f}s ({count} images)")
        if counted:
            run.values[index] = value
            run.built[index] = count
            if deployed is not None:
                run.deployed[index] = deployed
        time.sleep(PAUSE)
    return ", ".join(said)


def command_dirs(shape: Shape, count: int | None) -> list[str]:
    return list(shape.command_dirs[: count or len(shape.command_dirs)])


KO_ALL_FLAGS = ("`ko build --base-import-paths` of every command in one call (ko's default `--jobs`, GOMAXPROCS), "
                "into the daemon, triggered by watchfiles on `*.go` with kodev's settings; a `.ko.yaml` build per "
                "command with `ldflags: [-buildid=, -s, -w]` (ko adds `-trimpath`); base from the local registry.")
SKAFFOLD_ALL_FLAGS = ("`skaffold dev`, one ko artifact per command (flags as in scenario 1; its default watch "
                      "`**/*.go`, so a shared-package edit rebuilds every artifact), local builds one at a time "
                      "(Skaffold's default `concurrency: 1`), then the docker deployer runs one container per image "
                      "(the generated commands print and exit without `-addr`).")


def open_rivals(context: Context, shape: Shape, copy: Callable[[str], Path]) -> list[tuple[RivalRun, Rival | None]]:
    """The two rivals on their own copies, or the reason each cannot run here."""
    from bench import lineup, tools

    found = lineup.rivals(context)
    opened: list[tuple[RivalRun, Rival | None]] = []
    run = RivalRun("ko loop (every command)")
    run.error = found.problem(tools.KO)
    if not run.error and found.registry is not None:
        opened.append((run, KoAll(context, copy("s2-ko"), found.path(tools.KO), found.registry.base,
                                  list(shape.command_dirs))))
    else:
        opened.append((run, None))
    artifacts = command_dirs(shape, context.settings.skaffold_artifacts)
    run = RivalRun(f"skaffold dev ({len(artifacts)} artifacts)")
    run.error = found.problem(tools.SKAFFOLD)
    if not run.error and found.registry is not None:
        opened.append((run, SkaffoldAll(context, copy("s2-skaffold"), found.path(tools.SKAFFOLD), found.registry.base,
                                        found.registry.host, artifacts)))
    else:
        opened.append((run, None))
    return opened


def start_rivals(context: Context, rivals: list[tuple[RivalRun, Rival | None]]) -> None:
    for run, rival in rivals:
        if rival is None or run.error:
            continue
        context.log(f"scenario 2: first build of {run.name}")
        try:
            run.first = rival.start()
        except Exception as exc:
            run.error = f"did not start: {exc}"
        context.log(f"scenario 2: {run.name} {'FAILED' if run.error else f'ready after {run.first:.1f}s'}")


def stop_rivals(rivals: list[tuple[RivalRun, Rival | None]]) -> None:
    for run, rival in rivals:
        if rival is not None:
            try:
                rival.stop()
            except Exception as exc:
                run.error = run.error or f"stop failed: {exc}"


def rival_rows(rivals: list[tuple[RivalRun, Rival | None]], kodev: dict[int, float]
               ) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(rows for the series table, rows for the derived table, notes) for the rivals."""
    from bench.alternate import quote
    from bench.measure import median
    from bench.results import seconds

    series, derived, notes = [], [], []
    for run, _rival in rivals:
        values = [run.values[k] for k in sorted(run.values)]
        counts = ", ".join(sorted({str(n) for n in run.built.values()})) or "—"
        if values:
            series.append([run.name, seconds(median(values)), seconds(min(values)), seconds(max(values)),
                           str(len(values)), counts])
        else:
            series.append([run.name, "—", "—", "—", "0", "did not run (below)"])
        pairs = [kodev[k] / run.values[k] for k in sorted(run.values) if k in kodev and run.values[k] > 0]
        derived.append([f"kodev / {run.name} (median of per-pair ratios)",
                        f"{median(pairs):.2f}x" if pairs else "—"])
        if run.deployed:
            derived.append([f"{run.name}: write → its deploy done (\"Watching for changes\"), median",
                            seconds(median(list(run.deployed.values())))])
        if run.first is not None:
            derived.append([f"{run.name}: first build (start → all images), once", seconds(run.first)])
        if run.error:
            notes.append(f"**{run.name} failed:** {quote(run.error)}")
    return series, derived, notes
