"""The real rivals on private copies of examples/hello: the ko loop, `skaffold dev`, air.

They mirror bench/contenders.py's contenders (a `HelloCopy` with `start()`, `measure(token) -> (seconds
from the write until the page serves the token, a breakdown)`, `stop()`), so scenarios can alternate them
with kodev. Each builds with kodev watch's flags (`-trimpath -ldflags='-buildid= -s -w'`, CGO_ENABLED=0)
and waits as kodev's watcher does (25 ms of quiet) where the tool lets it be told:
- the ko loop: kodev's own batching of saves (in a thread here, as the shell loop) -> `ko build` into
  the daemon (KO_DOCKER_REPO=ko.local/…, which is `--local`; `--bare` names the image after the run) ->
  `docker rm -f` + `docker run --network host`. Flags from a generated .ko.yaml (ko adds -trimpath).
- `skaffold dev`: ko builder (`build.local.push: false`), docker deployer, `--watch-poll-interval` 25 ms
  (its quiet period; 1000 by default). Its network and arguments go through bench/dockershim.py.
- air: the server as a host process (no image, no container), air's `delay` 25 ms (1000 by default).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.contenders import INITIAL_TEXT, WATCH_BUILD_FLAGS, HelloCopy
from bench.context import Context
from bench.dockershim import DockerShim
from bench.measure import BenchError, Process, kodev_quiet_ms, wait_for_text
from bench.rivalmarks import AIR_MARKS, KO_MARKS, SKAFFOLD_MARKS, SKAFFOLD_WATCHING, ko_reference, stages
from bench.saveloop import SaveLoop

LDFLAGS = WATCH_BUILD_FLAGS[1].removeprefix("-ldflags=").split()  # ["-buildid=", "-s", "-w"]
SKAFFOLD_NETWORK = "skaffold-network-"
SKAFFOLD_SCHEMA = "skaffold/v4beta13"  # the newest config version Skaffold v2.16.1 reads


def server_args(port: int) -> list[str]:
    return ["-addr", f"127.0.0.1:{port}"]


def _quote(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def inline_kodata_symlinks(kodata: Path) -> list[str]:
    """Replace kodata symlinks leading out of kodata by copies; the paths replaced.

    ko v0.19 refuses them ("kodata symlink … resolves to … which is outside the kodata root"), and
    examples/hello's banner.txt is one: the ko loop gets the same bytes as plain files.
    """
    root = kodata.resolve()
    replaced = []
    for path in sorted(kodata.rglob("*")):
        if path.is_symlink():
            target = path.resolve()
            if target.is_file() and root not in target.parents:
                data = target.read_bytes()
                path.unlink()
                path.write_bytes(data)
                replaced.append(str(path.relative_to(kodata)))
    return replaced


# --- the ko loop ----------------------------------------------------------------------------------------

def watched_by_the_loop(_change: object, path: str) -> bool:
    """What the ko loop rebuilds on: Go files, and kodata (ko packs it into the image)."""
    return path.endswith(".go") or "/kodata/" in path


def ko_yaml() -> str:
    # No `flags`: ko adds -trimpath itself. CGO_ENABLED=0 is ko's default too, spelled out for the reader.
    return ("builds:\n- id: server\n  main: ./cmd/server\n  env: [CGO_ENABLED=0]\n"
            f"  ldflags: {_quote(LDFLAGS)}\n")


def run_timed(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> tuple[Process, float]:
    """Run to the end; the process (its lines, timed as read) and the monotonic time it ended."""
    process = Process(argv, cwd, env=env)
    try:
        process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.stop(timeout=5)
        raise BenchError(f"{process.describe()} did not finish in {timeout:.0f}s\n{process.tail()}") from None
    ended = time.monotonic()
    process.stop()  # joins the readers: every line is in
    return process, ended


class KoLoop(HelloCopy):
    """watchfiles -> `ko build` (into the daemon) -> docker rm -f + docker run --network host."""

    def __init__(self, context: Context, label: str, ko: Path, base: str, source: Path | None = None) -> None:
        super().__init__(context, label, source)
        self.ko = ko
        kodata = self.module / "cmd/server/kodata"
        self.inlined = inline_kodata_symlinks(kodata) if kodata.is_dir() else []
        (self.module / ".ko.yaml").write_text(ko_yaml())
        self.name = context.name(label)
        self.repo = f"ko.local/{context.repo}/{label}"
        self.env = {"KO_DOCKER_REPO": self.repo, "KO_DEFAULTBASEIMAGE": base, "KO_GO_PATH": context.go}
        context.containers.add(self.name)
        self.loop = SaveLoop(self.module, self.run_once, watched_by_the_loop, "ko loop")

    def run_once(self) -> dict[str, float]:
        started = time.monotonic()
        built, ended = run_timed([str(self.ko), "build", "--bare", "--tags", self.context.uid, "./cmd/server"],
                                 self.module, self.env)
        if built.popen.returncode != 0:
            raise BenchError(f"ko build exited {built.popen.returncode}:\n{built.tail()}")
        ref = ko_reference("\n".join(line.text for line in built.since(0, stream="stdout")))
        steps = {"ko build": ended - started, **stages(built.since(0, stream="stderr"), KO_MARKS, started, ended)}
        for step, argv in (("docker rm -f", ["docker", "rm", "-f", self.name]),
                           ("docker run", ["docker", "run", "-d", "--name", self.name, "--network", "host",
                                           "--label", f"dev.kodevbench.run={self.context.uid}", ref,
                                           *server_args(self.port)])):
            begun = time.monotonic()
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
            steps[step] = time.monotonic() - begun
            if step == "docker run" and done.returncode != 0:
                raise BenchError(f"ko loop: {' '.join(argv)} failed: {done.stderr[-800:]}")
        return steps

    def start(self, timeout: float = 300) -> float:
        started = time.monotonic()
        self.run_once()
        wait_for_text(self.port, INITIAL_TEXT, timeout=timeout)
        self.loop.start()
        return time.monotonic() - started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        started, served, triggered, steps = self.loop.measure(lambda: self.edit(token), self.port, token)
        return served - started, {"watcher": triggered - started, **steps}

    def stop(self) -> None:
        self.loop.stop()
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False, timeout=120)
        remove_repository(self.repo)


def remove_repository(repository: str) -> None:
    """Every tag of a repository a rival made (outside kodev.bench/<uid>/: the context's clean-up misses it)."""
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
                            capture_output=True, text=True, check=False, timeout=120)
    tags = [tag for tag in listed.stdout.split() if tag.startswith(f"{repository}:")]
    if tags:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, check=False, timeout=120)


# --- skaffold dev ---------------------------------------------------------------------------------------

def skaffold_artifact(image: str, base: str, main: str, kodata: str | None = None) -> str:
    """One ko artifact. Skaffold watches `**/*.go` for it by default; `kodata` (a directory) is added to that, as
    a user of kodata would (else a kodata edit never rebuilds). Each path must match a file: Skaffold refuses
    a pattern that matches none."""
    watched = "" if kodata is None else f"      dependencies:\n        paths: {_quote(['**/*.go', kodata])}\n"
    return (f"  - image: {image}\n    context: .\n    ko:\n      fromImage: {base}\n      main: {main}\n"
            f"      env: [CGO_ENABLED=0]\n      flags: [-trimpath]\n      ldflags: {_quote(LDFLAGS)}\n{watched}")


def skaffold_config(name: str, artifacts: list[str], images: list[str]) -> str:
    """`build.local.push: false` (load into the daemon), sha256 tags, the docker deployer; local builds run one
    artifact at a time (Skaffold's default `concurrency: 1`)."""
    return (f"apiVersion: {SKAFFOLD_SCHEMA}\nkind: Config\nmetadata:\n  name: {name}\n"
            "build:\n  tagPolicy:\n    sha256: {}\n  local:\n    push: false\n  artifacts:\n"
            + "".join(artifacts) + f"deploy:\n  docker:\n    images: [{', '.join(images)}]\n")


def skaffold_yaml(image: str, base: str, kodata: bool = False) -> str:
    artifact = skaffold_artifact(image, base, "./cmd/server", "cmd/server/kodata" if kodata else None)
    return skaffold_config("hello", [artifact], [image])


def skaffold_argv(skaffold: Path, settings: Path, cache: Path, registry_host: str) -> list[str]:
    quiet = kodev_quiet_ms()
    return [str(skaffold), "dev", "--config", str(settings), "--update-check=false", "--interactive=false",
            "--port-forward=off", "--watch-poll-interval", str(quiet), "--cache-file", str(cache),
            "--insecure-registry", registry_host, "--detect-minikube=false"]


# Skaffold's own settings file: no update check, no survey, no metrics (nothing leaves 127.0.0.1).
SKAFFOLD_GLOBAL = "global:\n  update-check: false\n  collect-metrics: false\n  survey:\n    disable-prompt: true\n"


class SkaffoldDev(HelloCopy):
    """`skaffold dev` (ko builder, docker deployer) on a copy, its daemon traffic through the shim."""

    def __init__(self, context: Context, label: str, skaffold: Path, base: str, registry_host: str,
                 source: Path | None = None) -> None:
        super().__init__(context, label, source)
        self.skaffold = skaffold
        # The docker deployer names the container after the image: no slashes, so kb-<uid>-<label> for both.
        self.image = context.name(label)
        kodata = (self.module / "cmd/server/kodata").is_dir()
        (self.module / "skaffold.yaml").write_text(skaffold_yaml(self.image, base, kodata))
        self.settings = context.work / f"{label}-skaffold-config.yaml"
        self.settings.write_text(SKAFFOLD_GLOBAL)
        self.registry_host = registry_host
        self.shim: DockerShim | None = None
        self.process: Process | None = None

    def argv(self) -> list[str]:
        return skaffold_argv(self.skaffold, self.settings, self.context.work / f"{self.label}-skaffold-cache",
                             self.registry_host)

    def start(self, timeout: float = 600) -> float:
        self.shim = DockerShim(self.context.work / f"{self.label}.sock", SKAFFOLD_NETWORK, server_args(self.port))
        env = {"DOCKER_HOST": self.shim.docker_host, "KO_GO_PATH": self.context.go, "SKAFFOLD_UPDATE_CHECK": "false"}
        self.process = Process(self.argv(), self.module, env=env)
        self.context.processes.append(self.process)
        try:
            self.process.wait_for(SKAFFOLD_WATCHING, timeout=timeout, stream="stdout")
            wait_for_text(self.port, INITIAL_TEXT, timeout=60)
        finally:
            self.context.containers.update(name for name in self.shim.containers if name)
        return time.monotonic() - self.process.started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        assert self.process is not None and self.shim is not None
        mark = self.process.mark()
        started = time.monotonic()
        self.edit(token)
        try:
            served = wait_for_text(self.port, token, timeout=120)
            # "Watching for changes..." again: the deploy is done (the page can answer a little before).
            self.process.wait_for(SKAFFOLD_WATCHING, mark=mark, timeout=120, stream="stdout")
        except BenchError as exc:
            raise BenchError(f"{exc}\nskaffold dev ({self.label}) printed:\n{self.process.tail()}") from None
        self.context.containers.update(name for name in self.shim.containers if name)
        return served - started, stages(self.process.since(mark), SKAFFOLD_MARKS, started, served)

    def stop(self) -> None:
        if self.process is not None:
            self.context.stop(self.process)  # SIGINT: skaffold removes its containers
            self.process = None
        if self.shim is not None:
            for name in self.shim.containers:
                if name:
                    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False, timeout=120)
            self.shim.close()
            self.shim = None
        remove_repository(self.image)


# --- air ------------------------------------------------------------------------------------------------

def air_toml(port: int, delay_ms: int) -> str:
    build = " ".join(["go", "build", WATCH_BUILD_FLAGS[0], f"'{WATCH_BUILD_FLAGS[1]}'", "-o", "./tmp/server",
                      "./cmd/server"])
    return (
        'root = "."\ntmp_dir = "tmp"\n\n[build]\n'
        f'  cmd = "{build}"\n  entrypoint = ["./tmp/server"]\n  args_bin = {_quote(server_args(port))}\n'
        f'  delay = {delay_ms}\n  include_ext = ["go"]\n  exclude_dir = ["tmp", "assets"]\n'
        '  exclude_regex = ["_test.go"]\n  stop_on_error = true\n  send_interrupt = false\n'
        '\n[log]\n  time = false\n\n[screen]\n  clear_on_rebuild = false\n\n[misc]\n  clean_on_exit = true\n')


class AirWatch(HelloCopy):
    """air on a copy: `go build` with kodev's flags, the server restarted as a host process."""

    def __init__(self, context: Context, label: str, air: Path, source: Path | None = None) -> None:
        super().__init__(context, label, source)
        self.air = air
        (self.module / ".air.toml").write_text(air_toml(self.port, kodev_quiet_ms()))
        self.process: Process | None = None

    def start(self, timeout: float = 300) -> float:
        go_dir = str(Path(self.context.go).parent)
        env = {"CGO_ENABLED": "0", "KO_DATA_PATH": str(self.module / "cmd/server/kodata"),
               "PATH": f"{go_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # air runs `go` from PATH
        self.process = Process([str(self.air), "-c", ".air.toml"], self.module, env=env)
        self.context.processes.append(self.process)
        wait_for_text(self.port, INITIAL_TEXT, timeout=timeout)
        return time.monotonic() - self.process.started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        assert self.process is not None
        mark = self.process.mark()
        started = time.monotonic()
        self.edit(token)
        try:
            served = wait_for_text(self.port, token, timeout=120)
        except BenchError as exc:
            raise BenchError(f"{exc}\nair ({self.label}) printed:\n{self.process.tail()}") from None
        return served - started, stages(self.process.since(mark), AIR_MARKS, started, served)

    def stop(self) -> None:
        if self.process is not None:
            self.context.stop(self.process)
            self.process = None
        orphans = reap(self.module / "tmp" / "server")
        if orphans:  # seen after bursts: a superseded run's `sh -c` outlives air and keeps the port
            self.context.log(f"air ({self.label}) left servers running; killed PIDs {orphans}")


def reap(binary: Path) -> list[int]:
    """SIGKILL the processes still running `binary` (itself, or `sh -c 'BINARY ARGS'`); their PIDs."""
    wanted = str(binary).encode()
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg == wanted or arg.startswith(wanted + b" ") for arg in argv):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed
