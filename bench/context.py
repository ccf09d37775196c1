"""What every scenario shares: settings, a private work directory and kodev cache, the daemon, cleanup.

Everything the benchmark creates in Docker carries its run's id (`kodev.bench/<uid>/…` tags,
`kb-<uid>-…` container names) and is removed at the end, so concurrent runs and other users of the
daemon are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import Shape
from bench.measure import BenchError, Process
from tests.examples import copy_example

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    quick: bool = False
    warmup: int = 1
    reps: int = 5
    idle_seconds: float = 30.0
    base_mb: int = 200
    scale_packages: int = 2000
    scale_files: int = 10000
    module_commands: int = 20
    module_packages: int = 200
    shared_warmup: int | None = None  # scenario 2's own warm-up/repetitions (None: as above)
    shared_reps: int | None = None
    decide_batch: int = 1000  # changed files in scenario 5's batch `decide`
    rival_warmup: int | None = None  # scenarios 8 and 9 (long turns, one per contender): None as above
    rival_reps: int | None = None
    skaffold_artifacts: int | None = None  # scenario 2's skaffold dev: artifacts (None: every command)
    shared_rivals: bool = True  # scenario 2 runs the ko loop and skaffold dev (quick mode: only with --rivals)

    @classmethod
    def for_mode(cls, quick: bool, reps: int | None = None, rivals: bool = False) -> Settings:
        if quick:
            # Scenario 2 rebuilds 20 commands per round: in quick mode its first build is its only warm-up.
            return cls(quick=True, warmup=1, reps=reps or 3, idle_seconds=5.0, scale_packages=500,
                       scale_files=2500, shared_warmup=0, shared_reps=min(reps or 2, 2), decide_batch=250,
                       rival_warmup=0, rival_reps=min(reps or 2, 2), skaffold_artifacts=5, shared_rivals=rivals)
        # Scenarios 1 and 3 are cheap and noisy: 7 counted rounds; scenario 2 (20 links a round for B): 5.
        return cls(quick=False, warmup=1, reps=reps or 7, shared_warmup=1, shared_reps=min(reps or 5, 5))


def _log(message: str) -> None:
    print(f"\033[2m[bench {time.strftime('%H:%M:%S')}]\033[0m {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    settings: Settings
    work: Path
    uid: str
    go: str
    client: Any
    buildkit: bool
    log: Callable[[str], None] = _log
    processes: list[Process] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    keep: bool = False
    load_at_start: str = ""  # the 1/5/15-minute load averages when the run began (noise from other work)
    peaks: dict[str, float] = field(default_factory=dict)  # peak RSS (MB) of kodev processes, by label
    shape200: Shape | None = None  # the generated 20-command module, once written
    shared: dict[str, Any] = field(default_factory=dict)  # things scenarios open once per run (the rivals)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed by close()
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, keep: bool = False, log: Callable[[str], None] = _log) -> Context:
        go = shutil.which(os.environ.get("KODEV_GO", "go"))
        if go is None:
            raise BenchError("no `go` on PATH (or KODEV_GO): run `. scripts/env.sh` first")
        if shutil.which("docker") is None:
            raise BenchError("no `docker` CLI on PATH: the shell-loop contender needs it")
        from kodev.daemon import connect

        daemon = connect()
        uid = uuid.uuid4().hex[:8]
        work = Path(tempfile.mkdtemp(prefix=f"kodev-bench-{uid}-"))
        context = cls(settings=settings, work=work, uid=uid, go=go, client=daemon.client,
                      buildkit=_buildx_available(), log=log, keep=keep, load_at_start=load_average())
        # One kodev cache for the run, shared by every kodev process and this one, removed afterwards.
        context._set_env("KODEV_CACHE_DIR", str(work / "kodev-cache"))
        context._set_env("GOTOOLCHAIN", os.environ.get("GOTOOLCHAIN", "local"))
        for name in ("SOURCE_DATE_EPOCH", "KO_DATA_DATE_EPOCH"):
            context._set_env(name, None)
        return context

    def _set_env(self, name: str, value: str | None) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    @property
    def repo(self) -> str:
        return f"kodev.bench/{self.uid}"

    @property
    def compose(self) -> tuple[str, ...]:
        """The Compose CLI kodev would use (argv)."""
        from kodev.compose import find_compose

        return find_compose().argv

    def name(self, label: str) -> str:
        return f"kb-{self.uid}-{label}"

    def copy_example(self, label: str, example: str = "hello") -> Path:
        target = self.work / label
        return copy_example(example, target)  # as committed: a user's edits to the example do not count

    def kodev(self, cwd: Path, *args: str) -> Process:
        from bench.measure import kodev_argv

        process = Process(kodev_argv(*args), cwd)
        self.processes.append(process)
        return process

    def python(self, cwd: Path, module: str, *args: str) -> Process:
        process = Process([sys.executable, "-m", module, *args], cwd, env={"PYTHONPATH": str(REPO)})
        self.processes.append(process)
        return process

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ}
        if not self.buildkit:
            env["DOCKER_BUILDKIT"] = "0"
        done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, check=False, timeout=600)
        if check and done.returncode != 0:
            raise BenchError(f"docker {' '.join(args)} failed: {done.stderr.strip()[:500]}")
        return done

    def stop(self, process: Process) -> None:
        process.stop()
        with contextlib.suppress(ValueError):
            self.processes.remove(process)

    def close(self) -> None:
        """Stop every process, remove every container and image of this run, delete the work directory."""
        for process in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(process)
        with contextlib.suppress(Exception):
            self.stack.close()  # what scenarios opened for the run (the local registry)
        for name in self.containers:
            with contextlib.suppress(Exception):
                self.client.api.remove_container(name, force=True)
        # The low-level lists: the high-level ones inspect every object, and another user of the daemon removing
        # one meanwhile (a test suite does, all the time) made them raise, and the whole clean-up was skipped.
        with contextlib.suppress(Exception):
            for container in self.client.api.containers(all=True, filters={"name": f"kb-{self.uid}-"}):
                with contextlib.suppress(Exception):
                    self.client.api.remove_container(container["Id"], force=True)
        refs = set(self.images)
        with contextlib.suppress(Exception):
            for image in self.client.api.images():
                refs.update(tag for tag in image.get("RepoTags") or ()
                            if tag.startswith((f"{self.repo}/", f"kb-{self.uid}-")))
        for ref in sorted(refs, key=lambda r: r.startswith("sha256:")):  # tags first, then bare IDs
            with contextlib.suppress(Exception):
                self.client.api.remove_image(ref, force=True)
        with contextlib.suppress(Exception):
            self.client.close()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def _buildx_available() -> bool:
    """Whether `docker build` can use BuildKit (the buildx plugin); else the classic builder is used."""
    done = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, check=False, timeout=60)
    return done.returncode == 0


def load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"
