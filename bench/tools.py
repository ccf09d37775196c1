"""The rival tools (ko, air, Skaffold) and crane, pinned here and only here, installed as their users do.

Each is `go install PACKAGE@VERSION` with the machine's `go` into a directory of its own,
~/.cache/kodev-bench/tools/<tool>-<version>/bin, and reused while the binary is there. Skaffold, which
`go install` cannot fetch here, is built from its released module's source instead, and says so (`note`).
An install that fails, or a binary that does not run, comes back as an `Installed` with the exact error,
for the report to show in place of that contender's numbers: nothing is dropped in silence.

`python -m bench.tools [NAME…]` installs (or finds) them and prints a line each; `python -m bench.tools
--smoke [NAME…]` then runs one edit -> serving per rival (by hand: noisy, not the suite's, not a result).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_TIMEOUT = 1800  # seconds; Skaffold's module graph is large and 2 cores are shared


@dataclass(frozen=True)
class Tool:
    """One pinned tool: `package` is what `go install` builds (the module or one of its commands)."""

    name: str
    module: str
    version: str
    package: str
    binary: str
    version_args: tuple[str, ...]
    ldflags: str = ""  # what the project's own release build stamps (Skaffold's version is an -X)
    source_fallback: bool = False  # when `go install` fails: `go build` in the released module's source

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def subpackage(self) -> str:
        """The package relative to its module's root: "." or "./cmd/…"."""
        rest = self.package.removeprefix(self.module)
        return f".{rest}" if rest else "."


# The versions: the newest the Go module proxy here serves. For Skaffold it refuses the version list (403);
# by name, v2.25.0 (the newest release) is refused, v2.19.0 fails the checksum database (404), v2.16.1 is
# served, but `go install …@v2.16.1` then fails on the list (its deprecation check): hence the fallback.
KO = Tool("ko", "github.com/google/ko", "v0.19.1", "github.com/google/ko", "ko", ("version",))
AIR = Tool("air", "github.com/air-verse/air", "v1.67.4", "github.com/air-verse/air", "air", ("-v",))
_SKAFFOLD = "github.com/GoogleContainerTools/skaffold/v2"
_SKAFFOLD_VERSION = "v2.16.1"
SKAFFOLD = Tool("skaffold", _SKAFFOLD, _SKAFFOLD_VERSION, f"{_SKAFFOLD}/cmd/skaffold", "skaffold", ("version",),
                ldflags=f"-X {_SKAFFOLD}/pkg/skaffold/version.version={_SKAFFOLD_VERSION}", source_fallback=True)
CRANE = Tool("crane", "github.com/google/go-containerregistry", "v0.22.1",
             "github.com/google/go-containerregistry/cmd/crane", "crane", ("version",))
RIVALS = (KO, AIR, SKAFFOLD)
ALL = (*RIVALS, CRANE)


@dataclass(frozen=True)
class Installed:
    """The outcome for one tool: `path` and `version` when it runs, else `error` (verbatim, trimmed)."""

    tool: Tool
    path: Path | None
    version: str  # as the tool reports it ("" when it failed)
    seconds: float  # the install's wall time; 0.0 when an earlier install was reused
    reused: bool
    error: str = ""
    note: str = ""  # how it was installed when not by `go install` alone, and why

    @property
    def ok(self) -> bool:
        return self.path is not None and not self.error

    def describe(self) -> str:
        if not self.ok:
            return f"{self.tool.name} {self.tool.version}: FAILED: {self.error}"
        how = "cached" if self.reused else f"installed in {self.seconds:.1f}s"
        return f"{self.tool.name} {self.version} ({how}; {self.path}){': ' + self.note if self.note else ''}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kodev-bench" / "tools"


def tool_dir(tool: Tool, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{tool.name}-{tool.version}"


def install_command(tool: Tool, go: str, gobin: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and the environment additions of the install (GOTOOLCHAIN=local: never fetch another go)."""
    flags = [f"-ldflags={tool.ldflags}"] if tool.ldflags else []
    return [go, "install", *flags, tool.spec], {"GOBIN": str(gobin), "GOTOOLCHAIN": "local"}


def download_command(tool: Tool, go: str) -> list[str]:
    """`go mod download -json MODULE@VERSION`: the released module's source (checksum-verified) and its Dir."""
    return [go, "mod", "download", "-json", f"{tool.module}@{tool.version}"]


def source_build_command(tool: Tool, go: str, gobin: Path) -> list[str]:
    """`go build` run in the downloaded module: its own go.mod and go.sum pick every dependency."""
    flags = [f"-ldflags={tool.ldflags}"] if tool.ldflags else []
    return [go, "build", "-trimpath", *flags, "-o", str(gobin / tool.binary), tool.subpackage]


def parse_download(output: str) -> tuple[str, str]:
    """(Dir, Error) from `go mod download -json` (one JSON object; Error set when the download failed)."""
    try:
        found = json.loads(output)
    except ValueError:
        return "", last_lines(output) or "(no output)"
    return str(found.get("Dir") or ""), str(found.get("Error") or "")


_VERSION = re.compile(r"\bv?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\b")


def parse_version(output: str) -> str | None:
    """The first version number in a tool's `version` output, with a leading v ("v0.19.1"), or None.

    ko prints "v0.19.1" (or "0.19.1"), `skaffold version` "v2.16.1", and `air -v` a banner whose line holds
    "v1.67.4, built with Go go1.27.3": the first x.y.z is the tool's own in all three.
    """
    found = _VERSION.search(output)
    return f"v{found.group(1)}" if found else None


def last_lines(text: str, count: int = 12, limit: int = 2000) -> str:
    """The end of a tool's output, where go and the tools put the reason they failed."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])[-limit:]


def _go() -> str:
    found = shutil.which(os.environ.get("KODEV_GO", "go"))
    if found is None:
        raise FileNotFoundError("no `go` on PATH (or KODEV_GO): run `. scripts/env.sh` first")
    return found


def report_version(tool: Tool, binary: Path) -> tuple[str, str]:
    """(version, error): run the tool's version command; an error when it does not run or says nothing usable."""
    try:
        done = subprocess.run([str(binary), *tool.version_args], capture_output=True, text=True, check=False,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"{binary.name} {' '.join(tool.version_args)}: {exc}"
    output = f"{done.stdout}\n{done.stderr}"
    version = parse_version(output)
    if done.returncode != 0 or version is None:
        return "", (f"{binary.name} {' '.join(tool.version_args)} exited {done.returncode}: "
                    f"{last_lines(output) or '(no output)'}")
    if version != tool.version:
        return version, f"{binary.name} reports {version}, {tool.version} was installed"
    return version, ""


def _run(argv: list[str], env: dict[str, str], cwd: Path, log: bool) -> tuple[int, str, str]:
    """(exit code, stdout, stderr); an OSError or a timeout is exit code -1 with the reason as stderr."""
    if log:
        shown = " ".join(f"{key}={value}" for key, value in env.items() if key == "GOBIN")
        print(f"[bench tools] {shown + ' ' if shown else ''}{' '.join(argv)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=INSTALL_TIMEOUT,
                              env={**os.environ, **env}, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def _failure(argv: list[str], code: int, output: str) -> str:
    return f"{' '.join(argv)} exited {code}: {last_lines(output) or '(no output)'}"


def _build(tool: Tool, go: str, gobin: Path, log: bool) -> tuple[str, str]:
    """Build into `gobin`: (error, note); `go install`, then from the module's source if the tool allows."""
    argv, env = install_command(tool, go, gobin)
    code, out, err = _run(argv, env, gobin.parent, log)
    if code == 0:
        return "", ""
    failed = _failure(argv, code, err + out)
    if not tool.source_fallback:
        return failed, ""
    note = f"`go install` failed ({failed}); built from the released module's source instead"
    argv = download_command(tool, go)
    code, out, err = _run(argv, env, gobin.parent, log)
    source, error = parse_download(out)
    if code != 0 or error or not source:
        return f"{failed}; then {_failure(argv, code, error or err + out)}", note
    argv = source_build_command(tool, go, gobin)
    code, out, err = _run(argv, env, Path(source), log)
    return ("" if code == 0 else f"{failed}; then {_failure(argv, code, err + out)}"), note


def install(tool: Tool, go: str | None = None, root: Path | None = None, log: bool = True) -> Installed:
    """The tool from its cache, else installed there now; never raises for the tool's own failures."""
    target = tool_dir(tool, root)
    binary = target / "bin" / tool.binary
    if binary.is_file():
        version, error = report_version(tool, binary)
        note = (target / "NOTE").read_text().strip() if (target / "NOTE").is_file() else ""
        return Installed(tool, binary, version, 0.0, True, error, note)
    try:
        go = go or _go()
    except FileNotFoundError as exc:
        return Installed(tool, None, "", 0.0, False, str(exc))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Into a scratch directory renamed at the end: an interrupted install is never taken for a finished one.
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    started = time.monotonic()
    error, note = _build(tool, go, scratch / "bin", log)
    seconds = time.monotonic() - started
    if not error and not (scratch / "bin" / tool.binary).is_file():
        error = f"the build succeeded but left no {tool.binary} in {scratch / 'bin'}"
    if error:
        shutil.rmtree(scratch, ignore_errors=True)
        return Installed(tool, None, "", seconds, False, error, note)
    if note:
        (scratch / "NOTE").write_text(note + "\n")  # a later run reuses the binary: it reports how it came
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    version, error = report_version(tool, binary)
    return Installed(tool, binary, version, seconds, False, error, note)


def install_all(tools: Sequence[Tool] = RIVALS, go: str | None = None, root: Path | None = None,
                log: bool = True) -> dict[str, Installed]:
    """Every tool by name, installed one after the other (in parallel they would fight for 2 cores)."""
    return {tool.name: install(tool, go, root, log) for tool in tools}


def smoke(names: Sequence[str] = ()) -> int:
    """By hand, not in the suite: install, then one edit -> serving per rival (noisy, unmeasured)."""
    from bench import rivals
    from bench.context import Context, Settings
    from bench.registry import local_registry

    results = install_all([*(tool for tool in RIVALS if not names or tool.name in names), CRANE])
    for result in results.values():
        print(result.describe(), flush=True)
    failed = not all(result.ok for result in results.values())
    crane = results["crane"]
    if not crane.ok or crane.path is None:
        return 1
    context = Context.open(Settings.for_mode(quick=True))
    try:
        with local_registry(crane.path, context.go, crane.version, work=context.work) as registry:
            print(f"registry {registry.host}: base {registry.base} ({registry.pushed_with})", flush=True)
            for tool in RIVALS:
                found = results.get(tool.name)
                if found is None or found.path is None or not found.ok:
                    continue
                runner: rivals.KoLoop | rivals.SkaffoldDev | rivals.AirWatch
                if tool is KO:
                    runner = rivals.KoLoop(context, "smoke-ko", found.path, registry.base)
                elif tool is SKAFFOLD:
                    runner = rivals.SkaffoldDev(context, "smoke-skaffold", found.path, registry.base, registry.host)
                else:
                    runner = rivals.AirWatch(context, "smoke-air", found.path)
                try:
                    first = runner.start()
                    seconds, breakdown = runner.measure(f"smoke-{tool.name}-{context.uid}")
                    steps = ", ".join(f"{step} {value * 1000:.0f} ms" for step, value in breakdown.items())
                    print(f"{tool.name}: serving after {first:.1f}s; edit -> serving {seconds:.3f}s ({steps})",
                          flush=True)
                except Exception as exc:
                    failed = True
                    print(f"{tool.name}: FAILED: {exc}", flush=True)
                finally:
                    runner.stop()
    finally:
        context.close()
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.tools [NAME…]` installs and prints; `--smoke [NAME…]` also runs one edit per rival."""
    names = list(sys.argv[1:] if argv is None else argv)
    if names[:1] == ["--smoke"]:
        return smoke(names[1:])
    wanted = [tool for tool in ALL if not names or tool.name in names]
    results = install_all(wanted)
    for result in results.values():
        print(result.describe())
    return 0 if all(result.ok for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
