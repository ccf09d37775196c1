"""The contenders a scenario puts side by side, as `Entry`s (bench/alternate.py): kodev in both delivery
modes, the rivals (installed once per run by bench/tools.py, their base in a registry on 127.0.0.1 started
once per run by bench/registry.py), air, the shell loop and the `go build` floors — each with the flags it
builds with, or the exact reason it cannot run here.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import tools
from bench.alternate import Entry, describe, redact
from bench.contenders import GoFloor, KodevServer, ShellLoop, static_base
from bench.context import Context
from bench.measure import POLL_INTERVAL, BenchError, fetch, free_port, wait_until
from bench.registry import REGISTRY_BINARY, LocalRegistry, local_registry

KODEV_GO_FLAGS = ("`go build -trimpath -v -ldflags='-buildid= -s -w' -o DIR/ IMPORTPATH` (watch mode's own), "
                  "CGO_ENABLED=0, watcher quiet period 25 ms.")
KODEV_FLAGS = (KODEV_GO_FLAGS[:-1] + "; a main-only edit once a `go build` taught kodev the recipe: the `compile` "
               "and `link` that `go build` runs for it, as its dry run prints them (same flags, same bytes).")
KO_FLAGS = ("kodev's batching of saves on `*.go` and `kodata/` → `ko build --bare` into the daemon "
            "(`KO_DOCKER_REPO=ko.local/…`, what `--local` does) → `docker rm -f` + `docker run --network host`; "
            "a `.ko.yaml` gives `ldflags: [-buildid=, -s, -w]` and CGO_ENABLED=0; ko adds `-trimpath` itself and "
            "takes no `-v` or `-o` (it builds into a temporary directory of its own); base from the local "
            "registry by digest.")
SKAFFOLD_FLAGS = ("`skaffold dev` with the ko builder (`flags: [-trimpath]`, `ldflags: [-buildid=, -s, -w]`, "
                  "CGO_ENABLED=0, `build.local.push: false`, sha256 tags, base from the local registry by digest; "
                  "it watches `**/*.go` (its default for ko) plus `cmd/server/kodata` where there is one) and the "
                  "docker deployer (through bench/dockershim.py: host network and `-addr`, which the deployer "
                  "cannot be told); `--watch-poll-interval 25` (its default is 1000 ms); no `-v`, no `-o`.")
AIR_FLAGS = ("`go build -trimpath -ldflags='-buildid= -s -w' -o ./tmp/server ./cmd/server` on `*.go` changes, "
             "`delay = 25` ms (air's default is 1000), the server restarted as a host process: no image, no "
             "container, kodata read from the source directory.")
FLOOR_FLAGS = ("`go build -trimpath -ldflags='-buildid= -s -w' -o DIR/ ./cmd/server`, CGO_ENABLED=0, timed from the "
               "write (no watcher, no image).")
SHELL_FLAGS = ("kodev's batching of saves → `go build` with kodev's flags + `docker build` of a "
               "`FROM base / COPY` Dockerfile (base: kodev's static layer) + `docker rm -f` + `docker run`.")


@dataclass
class Rivals:
    installed: dict[str, tools.Installed]
    registry: LocalRegistry | None
    registry_error: str

    def problem(self, tool: tools.Tool) -> str:
        """Why `tool` cannot run here ("" when it can): its install's error, or no registry for its base."""
        found = self.installed.get(tool.name)
        if found is None:
            return f"{tool.name} was not installed"
        if not found.ok:
            return f"{tool.name} {tool.version} could not be installed: {found.error}"
        if tool in (tools.KO, tools.SKAFFOLD) and self.registry is None:
            return f"no local registry for its base: {self.registry_error}"
        return ""

    def path(self, tool: tools.Tool) -> Path:
        found = self.installed[tool.name].path
        assert found is not None
        return found


def rivals(context: Context, only: tuple[tools.Tool, ...] = tools.RIVALS) -> Rivals:
    """Install (or find) the rivals (`only` these: a scenario that needs ko alone does not build Skaffold) and
    crane, start the registry and push the base: once per run."""
    key = "rivals" if only == tools.RIVALS else "rivals:" + ",".join(tool.name for tool in only)
    cached = context.shared.get("rivals", context.shared.get(key))  # the whole set serves any part of it
    if isinstance(cached, Rivals):
        return cached
    started = time.monotonic()
    installed = tools.install_all([*only, tools.CRANE], go=context.go)
    for result in installed.values():
        context.log(redact(result.describe()))
    registry, error = None, ""
    crane = installed["crane"]
    if crane.ok and crane.path is not None:
        try:
            registry = context.stack.enter_context(local_registry(crane.path, context.go, crane.version,
                                                                  work=context.work))
            context.log(f"registry {registry.host}: base {registry.base}")
        except Exception as exc:  # no registry, a push refused, a binary gone: ko and Skaffold say why
            error = describe(exc)
    else:
        error = f"crane (which pushes the base) could not be installed: {crane.error}"
    found = Rivals(installed, registry, error)
    context.shared[key] = found
    context.log(f"rivals ready in {time.monotonic() - started:.1f}s")
    return found


def versions(context: Context) -> list[tuple[str, str]]:
    """Rows for the report's header: each tool as installed (or its error), and the registry."""
    found = next((v for k, v in context.shared.items() if k.startswith("rivals") and isinstance(v, Rivals)), None)
    if not isinstance(found, Rivals):
        return [("rivals (ko, Skaffold, air)", "not used by the scenarios run")]
    rows = [(name, one_line(result.describe()).removeprefix(f"{name} ")) for name, result in found.installed.items()]
    if found.registry is not None:
        rows.append(("registry", f"{_registry_version()} on {found.registry.host}, holding kodev's static base "
                     f"(pushed with {found.registry.pushed_with}): {found.registry.base}"))
    else:
        rows.append(("registry", f"not started: {one_line(found.registry_error)}"))
    return rows


def one_line(text: str) -> str:
    """For a table cell: remote hosts redacted, lines joined, pipes escaped."""
    return " ⏎ ".join(line.strip() for line in redact(text).splitlines() if line.strip()).replace("|", "\\|")


def _registry_version() -> str:
    try:
        done = subprocess.run([REGISTRY_BINARY, "--version"], capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return REGISTRY_BINARY
    return (done.stdout.strip() or REGISTRY_BINARY).splitlines()[0]


# --- entries --------------------------------------------------------------------------------------------

def kodev(context: Context, label: str, source: Path | None = None, recreate: bool = False,
          go_build: bool = False) -> Entry:
    """kodev watch as users run it; `recreate` without swapping, `go_build` without direct builds."""
    env = {**({"KODEV_SWAP": "0"} if recreate else {}), **({"KODEV_DIRECT": "0"} if go_build else {})}
    name = "kodev (recreate: KODEV_SWAP=0)" if recreate else "kodev (swap)"
    name = "kodev (swap, go build: KODEV_DIRECT=0)" if go_build else name
    return Entry(name, "kodev-gobuild" if go_build else "kodev-recreate" if recreate else "kodev",
                 lambda: TimedKodev(context, label, env=env, source=source),
                 flags=KODEV_FLAGS if not go_build and not recreate else KODEV_GO_FLAGS)


def ko(context: Context, label: str, source: Path | None = None) -> Entry:
    found = rivals(context)
    problem = found.problem(tools.KO)
    if problem:
        return Entry("ko loop", "ko", None, KO_FLAGS, error=problem)
    from bench.rivals import KoLoop

    assert found.registry is not None
    path, base = found.path(tools.KO), found.registry.base
    return Entry("ko loop", "ko", lambda: KoLoop(context, label, path, base, source=source), KO_FLAGS)


def skaffold(context: Context, label: str, source: Path | None = None) -> Entry:
    found = rivals(context)
    problem = found.problem(tools.SKAFFOLD)
    if problem:
        return Entry("skaffold dev", "skaffold", None, SKAFFOLD_FLAGS, error=problem)
    from bench.rivals import SkaffoldDev

    assert found.registry is not None
    path, base, host = found.path(tools.SKAFFOLD), found.registry.base, found.registry.host
    return Entry("skaffold dev", "skaffold", lambda: SkaffoldDev(context, label, path, base, host, source=source),
                 SKAFFOLD_FLAGS)


def air(context: Context, label: str, source: Path | None = None) -> Entry:
    found = rivals(context)
    problem = found.problem(tools.AIR)
    if problem:
        return Entry("air (host process)", "air", None, AIR_FLAGS, error=problem)
    from bench.rivals import AirWatch

    path = found.path(tools.AIR)
    return Entry("air (host process)", "air", lambda: AirWatch(context, label, path, source=source), AIR_FLAGS)


def shell(context: Context, label: str) -> Entry:
    return Entry("shell loop", "shell", lambda: ShellLoop(context, label, static_base(context)), SHELL_FLAGS)


def floor(context: Context, label: str, source: Path | None = None) -> Entry:
    return Entry("go build (floor)", "floor", lambda: Floor(context, label, source), FLOOR_FLAGS)


GOCMD_FLAGS = ("the `go build` kodev watch runs, exactly (kodev/gobuild.py's `build_args`, as seen in /proc): "
               "`go build -trimpath -v -ldflags='-buildid= -s -w' -o DIR/ IMPORTPATH` in the module, CGO_ENABLED=0, "
               "GOOS/GOARCH of the target, its output merged and read, in its own session; timed around `go` "
               "alone, as kodev times its `go_seconds`; while it builds, the benchmark polls a server every 10 ms "
               "(the example's binary, started once), as it polls kodev's app while kodev builds.")


def kodev_go_command(context: Context, label: str, source: Path | None = None) -> Entry:
    return Entry("kodev's go build, alone", "gocmd", lambda: KodevGoCommand(context, label, source), GOCMD_FLAGS)


class Floor(GoFloor):
    """The `go build` floor as a runner: it serves nothing (port 0), its breakdown is empty."""

    def __init__(self, context: Context, label: str, source: Path | None = None) -> None:
        super().__init__(context, label, source)
        self.port = 0

    def start(self) -> float:
        started = time.monotonic()
        self.build()
        return time.monotonic() - started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:  # type: ignore[override]
        return super().measure(token), {}

    def stop(self) -> None:
        pass


class KodevGoCommand(Floor):
    """kodev's own `go build`, run alone: the argv and environment kodev watch gives `go` (kodev/gobuild.py's
    `build_args` with watch mode's -s -w; CGO_ENABLED, GOOS and GOARCH from kodev/gotool.py and the target),
    in its own session with stdout and stderr merged as kodev reads them, the output directory's old binary
    removed first as kodev does. Timed around `go` alone, as kodev's `go_seconds` is.

    While kodev builds, the benchmark polls its app every POLL_INTERVAL for the new page, and that app
    answers: ~10 ms of a 2-core machine's time per build that `go` does not get. So while this command
    builds, the benchmark polls a server of its own (the example's binary, started once) the same way."""

    def start(self) -> float:
        seconds = super().start()
        served = self.context.work / f"{self.out.name}-served"
        served.mkdir(exist_ok=True)
        shutil.copy2(self.out / "server", served / "server")
        self.port = free_port()
        self.server = subprocess.Popen([str(served / "server"), "-addr", f"127.0.0.1:{self.port}"],
                                       cwd=self.module, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "KO_DATA_PATH": str(self.module / "cmd/server/kodata")})
        wait_until(lambda: fetch(self.port) is not None, 30, "the polled server of kodev's go build, alone")
        return seconds

    def stop(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.kill()
            server.wait(10)

    def argv(self) -> list[str]:
        return kodev_go_argv(self.context.go, self.out, f"{module_path(self.module)}/cmd/server")

    def run(self) -> float:
        (self.out / "server").unlink(missing_ok=True)
        env = {**os.environ, **kodev_go_env()}
        started = time.monotonic()
        done = subprocess.run(self.argv(), cwd=self.module, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env, start_new_session=True, check=False, timeout=300)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise BenchError(f"{' '.join(self.argv())} failed in {self.module}: {done.stdout[-800:]}")
        return seconds

    def build(self) -> None:
        self.run()

    def measure(self, token: str) -> tuple[float, dict[str, float]]:  # type: ignore[override]
        self.edit(token)
        done = threading.Event()

        def poll() -> None:  # as wait_for_text polls kodev's app while it builds
            while not done.is_set():
                fetch(self.port)
                time.sleep(POLL_INTERVAL)

        poller = threading.Thread(target=poll, name="poll", daemon=True)
        poller.start()
        try:
            return self.run(), {}
        finally:
            done.set()
            poller.join(5)


def kodev_go_argv(go: str, out: Path, import_path: str) -> list[str]:
    return [go, "build", "-trimpath", "-v", "-ldflags=-buildid= -s -w", "-o", f"{out}{os.sep}", import_path]


def kodev_go_env() -> dict[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": arch, "GOTOOLCHAIN": "local"}


def module_path(module: Path) -> str:
    for line in (module / "go.mod").read_text().splitlines():
        if line.startswith("module "):
            return line.split()[1].strip('"')
    raise BenchError(f"{module}/go.mod has no module line")


class TimedKodev(KodevServer):
    """kodev watch whose breakdown reads in the order of a round (bench/contenders.py's `parse_result` keys)."""

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        value, parts = super().measure(token)
        return value, kodev_steps(value, parts)


KODEV_OUTSIDE = "watcher + digest + app start (edit→serving − its 'rebuilt in')"
KODEV_GO = "go build"


def kodev_steps(value: float, parts: dict[str, float]) -> dict[str, float]:
    """kodev's `command.result` parts, renamed and ordered; its image and load follow a swap, off the path."""
    steps: dict[str, float] = {}
    if "total" in parts:
        steps[KODEV_OUTSIDE] = value - parts["total"]
    for key, label in (("go", KODEV_GO), ("swap", "swap"), ("restart", "container recreated"),
                       ("image", "image"), ("load", "load"), ("total", "its 'rebuilt in'"),
                       ("cpu", "kodev's own CPU"), ("sent_mb", "sent_mb")):
        if key in parts:
            steps[label] = parts[key]
    return steps
