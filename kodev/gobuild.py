"""Stage 'compile': `go build` of one or many commands, in as few invocations as their settings allow."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev.errors import CompileError, GoError
from kodev.gomod import MainPackage
from kodev.gotool import GoTool
from kodev.signals import interrupts_deferred

# A line `go build -v` prints as it compiles a package: the bare import path. The compiler's own lines
# ('# pkg' headers, 'file.go:1:2: ...', 'go: ...') always hold a space, a colon or a '#'.
_PACKAGE_LINE = re.compile(r"^[^\s:#]+$")
SUPERSEDED_POLL_SECONDS = 0.02  # how often a running `go build` asks whether newer saves supersede it


class Superseded(Exception):
    """The compile was given up: newer saves came while it ran (`superseded` said so), so its binaries would
    be stale before they served. Nothing was written that the next compile does not replace."""


@dataclass(frozen=True)
class BuildRequest:
    """One command and its `go build` settings, templates already expanded."""

    command: MainPackage
    env: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    trimpath: bool = True  # off for debugging: the binary's source paths are then the host's, as the IDE's


DEBUG_GCFLAGS = "-gcflags=all=-N -l"  # no optimizations, no inlining: every variable and line a debugger asks


def for_debugging(request: BuildRequest) -> BuildRequest:
    """`request` as `kodev debug` builds it: -N -l for every package, DWARF and symbols kept (no -s, -w),
    and no -trimpath, so breakpoints set by host paths need no path mapping."""
    flags = tuple(f for f in request.flags if f != "-trimpath" and not f.startswith("-gcflags"))
    ldflags = tuple(f for f in request.ldflags if f not in ("-s", "-w"))
    return dataclasses.replace(request, flags=(*flags, DEBUG_GCFLAGS), ldflags=ldflags, trimpath=False)


@dataclass(frozen=True)
class Binary:
    """A compiled command. `digest` (sha256 of the file) decides whether its image changed."""

    command: MainPackage
    path: Path
    digest: str
    seconds: float


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _groups(requests: Sequence[BuildRequest]) -> list[list[BuildRequest]]:
    """Requests that can share one `go build`: same settings and no two binaries of the same name."""
    groups: list[list[BuildRequest]] = []
    for request in requests:
        for group in groups:
            head = group[0]
            same_settings = ((head.env, head.flags, head.ldflags, head.trimpath)
                             == (request.env, request.flags, request.ldflags, request.trimpath))
            if same_settings and all(r.command.app_name != request.command.app_name for r in group):
                group.append(request)
                break
        else:
            groups.append([request])
    return groups


def _env(pairs: Sequence[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def build_args(group: Sequence[BuildRequest], out_dir: Path, verbose: bool = False) -> list[str]:
    head = group[0]
    # -v names each package as it is compiled (not those the build cache has): the progress kodev shows.
    args = ["build", *(["-trimpath"] if head.trimpath else []), *(["-v"] if verbose else []), *head.flags]
    # An empty build ID keeps the binary a function of the compiled code alone: Go's default ID hashes
    # the source files, so a comment-only edit would otherwise change the image and restart containers.
    ldflags = head.ldflags if any("-buildid" in flag for flag in head.ldflags) else ("-buildid=", *head.ldflags)
    args.append("-ldflags=" + " ".join(ldflags))
    return [*args, "-o", f"{out_dir}{os.sep}", *(r.command.import_path for r in group)]


def compile_commands(go: GoTool, requests: Sequence[BuildRequest], out_dir: Path,
                     on_package: Callable[[str], None] | None = None,
                     superseded: Callable[[], bool] | None = None) -> list[Binary]:
    """Compile every request into `out_dir`; one `go build` per group of compatible requests.

    With `on_package`, `go build -v` runs and it is called with each package's import path as Go starts
    compiling it (packages the build cache holds are not named).
    A compile error raises `CompileError` carrying the compiler output exactly as Go printed it. With
    `superseded`, it is asked every SUPERSEDED_POLL_SECONDS while `go` runs; on True the compile stops and
    `Superseded` is raised (Go's build cache keeps every package compiled so far).
    Interrupting (Ctrl-C, SIGTERM) ends the `go` process group before the exception propagates.
    """
    binaries: list[Binary] = []
    for index, group in enumerate(_groups(requests)):
        group_dir = out_dir / str(index)
        group_dir.mkdir(parents=True, exist_ok=True)
        for request in group:  # go writes a new file, then: a swapped-in hard link never changes under an app
            (group_dir / request.command.app_name).unlink(missing_ok=True)
        started = time.monotonic()
        cwd = group[0].command.module_dir
        args = build_args(group, group_dir, verbose=on_package is not None)
        # go's work directory goes in one of kodev's: a go build kodev kills (newer saves, Ctrl-C) cannot
        # remove its own, and a day of bursts would leave hundreds of go-build* directories behind.
        work = Path(tempfile.mkdtemp(prefix="gotmp-", dir=go.env.get("GOTMPDIR") or os.environ.get("GOTMPDIR")
                                     or out_dir))
        try:
            output, returncode = _run(go, args, cwd, {**_env(group[0].env), "GOTMPDIR": str(work)}, on_package,
                                      superseded)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        seconds = time.monotonic() - started
        if returncode != 0:
            names = ", ".join(r.command.import_path for r in group)
            if returncode < 0:
                cause = signal.Signals(-returncode).name
                hint = " (SIGKILL usually means the out-of-memory killer)" if cause == "SIGKILL" else ""
                raise CompileError(f"go build of {names} was killed by {cause}{hint}.", output)
            raise CompileError(f"go build failed for {names} (in {cwd}).", output)
        for request in group:
            path = group_dir / request.command.app_name
            if not path.is_file():
                raise GoError(f"go build reported success but wrote no binary at {path}.")
            binaries.append(Binary(request.command, path, file_digest(path), seconds))
    order = {request.command: index for index, request in enumerate(requests)}
    return sorted(binaries, key=lambda binary: order[binary.command])


def go_time(binaries: Sequence[Binary]) -> float:
    """What `go` itself took for `binaries` (each group's go build once, or a direct build's compile and
    link): the `go_seconds` kodev reports, without its own digest of each binary."""
    return sum({binary.path.parent: binary.seconds for binary in binaries}.values())


def _run(go: GoTool, args: list[str], cwd: Path, env: dict[str, str], on_package: Callable[[str], None] | None,
         superseded: Callable[[], bool] | None) -> tuple[str, int]:
    """Go's output as it comes: package lines (with -v) to `on_package`, the rest kept verbatim; the exit code."""
    kept: list[str] = []
    done = threading.Event()
    given_up = threading.Event()

    def watch(pid: int) -> None:  # the reading loop below blocks on go's output: a thread asks
        assert superseded is not None
        while not done.wait(SUPERSEDED_POLL_SECONDS):
            if superseded():
                given_up.set()
                _kill_group(pid)
                return

    process: subprocess.Popen[str] | None = None
    watcher: threading.Thread | None = None
    try:
        with interrupts_deferred():  # a Ctrl-C as go starts is raised once `process` can be ended
            process = go.popen(args, cwd=cwd, extra_env=env)
            if superseded is not None:
                watcher = threading.Thread(target=watch, args=(process.pid,), name="superseded", daemon=True)
                watcher.start()
        assert process.stdout is not None
        for line in process.stdout:
            if on_package is not None and _PACKAGE_LINE.match(line.rstrip("\n")):
                on_package(line.strip())
            else:
                kept.append(line)
        process.wait()
    except BaseException:
        if process is not None:
            _kill_group(process.pid)
            process.wait()
        raise
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
    if given_up.is_set():  # even if go finished meanwhile: the caller was told the round is given up
        raise Superseded
    if process.returncode != 0 and superseded is not None and superseded():
        raise Superseded  # a compile error newer saves may fix (a file caught half written): not news
    return "".join(kept), process.returncode


def _kill_group(pid: int) -> None:
    """`go` runs in its own session: end the whole group, go, compile and link children alike."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)

