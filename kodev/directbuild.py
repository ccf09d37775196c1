"""Stage 'compile', the direct way: when a save changed only a main package's own files, kodev runs the
compile and link `go build` would run (kodev/gorecipe.py) instead of go build, ~100 ms sooner.

A recipe is learned after a go build, in the background: two dry runs, then the recipe is run once and must
write the very bytes go build just wrote, else it is dropped. It stands in for go build only while nothing
else the command is built from has changed since that build began: every local package directory of its
graph, its embed directories, go.mod, go.sum, go.work, vendor/modules.txt, Go's env file and the toolchain
are stamped (mtime, size, inode) then, and any difference but in the main package's own files — with the
same imports, constraints and directives — means go build. So does a failed step (go build then reports
the error as it always does) and a checkout whose build info would change (`vcs.modified`, HEAD).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kodev.gobuild import Binary, BuildRequest, Superseded, build_args, file_digest
from kodev.gomod import VENDOR_DIR, VENDOR_MANIFEST, MainPackage, ModuleGraph, enclosing
from kodev.gorecipe import SHOW_COMPILE_FLAG, NoRecipe, Recipe, read_recipe
from kodev.gotool import GoTool

log = logging.getLogger(__name__)
# Learning runs beside the loop's own work: at a lower priority, so that a round's build comes first.
NICE: tuple[str, ...] = ("nice", "-n", "10") if shutil.which("nice") else ()
Stamp = tuple[int, int, int]  # mtime (ns), size, inode
OVERTAKEN = "its files changed while it was learned: the next save's go build teaches it"


@dataclass(frozen=True)
class Sources:
    """What a command is built from that can change under kodev: package directories (their files), trees
    (walked: embed directories) and single files (module files, Go's env file, the toolchain)."""

    dirs: tuple[Path, ...]
    trees: tuple[Path, ...] = ()
    files: tuple[Path, ...] = ()

    def stamps(self) -> dict[Path, Stamp]:
        found: dict[Path, Stamp] = {}
        for path in self.files:
            _stamp(path, found)
        for directory in self.dirs:
            for entry in _entries(directory):
                if not entry.is_dir():
                    _stamp(Path(entry.path), found)
        for tree in self.trees:
            for root, _, names in os.walk(tree):
                for name in names:
                    _stamp(Path(root, name), found)
        return found


def command_sources(graph: ModuleGraph, command: MainPackage, env_file: Path | None, go: Path) -> Sources | None:
    """What `command` is built from, by its graph (None when the graph does not hold it)."""
    names = graph.deps.get(command.import_path)
    if names is None:
        return None
    packages = [graph.packages[name] for name in names]
    files = [command.module_dir / name for name in ("go.mod", "go.sum", f"{VENDOR_DIR}/{VENDOR_MANIFEST}")]
    workspace = enclosing(command.module_dir, "go.work")
    if workspace is not None:
        files += [workspace / "go.work", workspace / "go.work.sum", workspace / VENDOR_DIR / VENDOR_MANIFEST]
    files += [path for path in (env_file, go) if path is not None]
    return Sources(dirs=tuple(p.dir for p in packages),
                   trees=tuple(p.dir / d for p in packages for d in sorted(p.embed_dirs)), files=tuple(files))


@dataclass(frozen=True)
class Learned:
    """A recipe that wrote go build's bytes, and the state of the sources when that go build began."""

    recipe: Recipe
    sources: Sources
    stamps: dict[Path, Stamp] = field(compare=False)


class DirectBuilds:
    """The recipes of one loop's commands (a reload makes a new one), and when each may stand in for go
    build. Learning runs on its own thread; `build` and `stamp` run on the round's."""

    def __init__(self, go: GoTool, work: Path, sources: Callable[[MainPackage], Sources | None],
                 learned: Callable[[MainPackage, bool, str], None] = lambda command, ready, reason: None) -> None:
        self.go = go
        self.work = work
        self.sources = sources
        self.on_learned = learned  # told each learning's end: ready or not, and why not
        self._learned: dict[BuildRequest, Learned] = {}
        self._latest: dict[BuildRequest, int] = {}  # the go build each request's newest learning comes from
        self._lock = threading.Lock()
        self._learning = ThreadPoolExecutor(1, thread_name_prefix="recipe")
        self._closed = threading.Event()  # a reload or the end: a learning under way gives up
        self._next = 0

    def stamp(self, requests: Sequence[BuildRequest]) -> dict[BuildRequest, tuple[Sources, dict[Path, Stamp]]]:
        """Just before a go build of `requests`: what each is built from, and its state."""
        found = {}
        for request in requests:
            sources = self.sources(request.command)
            if sources is not None:
                found[request] = (sources, sources.stamps())
        return found

    def learn(self, binaries: Sequence[Binary], requests: Sequence[BuildRequest],
              before: dict[BuildRequest, tuple[Sources, dict[Path, Stamp]]]) -> Future[None] | None:
        """After a go build: learn each command's recipe in the background (what `before` stamped)."""
        todo = [(r, b, before[r]) for r, b in zip(requests, binaries, strict=True) if r in before]
        if not todo:
            return None
        with self._lock:
            self._next += 1
            build = self._next
            for request, _, _ in todo:
                self._learned.pop(request, None)  # the build it came from is past
                self._latest[request] = build
        return self._learning.submit(self._learn_all, todo, build)

    def _learn_all(self, todo: list[tuple[BuildRequest, Binary, tuple[Sources, dict[Path, Stamp]]]],
                   build: int) -> None:
        for request, binary, (sources, stamps) in todo:
            if self._latest.get(request) != build or self._closed.is_set():
                continue  # a later go build of it is queued (that one is learned), or the loop is done
            try:
                recipe = self._read(request)
                built = self._run(recipe, _env(request), superseded=self._closed.is_set, prefix=NICE)
                if built is None:
                    raise NoRecipe("its compile or link failed when kodev ran it")
                if file_digest(built) != binary.digest:
                    raise NoRecipe("running it did not write the bytes go build wrote")
            except Superseded:
                continue  # closed meanwhile
            except (NoRecipe, OSError) as exc:
                reason = (OVERTAKEN if sources.stamps() != stamps  # a save came: nothing wrong with the recipe
                          else str(exc) or type(exc).__name__)
            else:
                reason = ""
                with self._lock:
                    if self._latest.get(request) != build:
                        continue  # a later go build came meanwhile: its learning says
                    self._learned[request] = Learned(recipe, sources, stamps)
            log.debug("direct build of %s: %s", request.command.import_path, reason or "learned")
            if not self._closed.is_set():
                self.on_learned(request.command, not reason, reason)

    def _read(self, request: BuildRequest) -> Recipe:
        if any(flag.startswith(("-gcflags", "-toolexec", "-cover", "-pgo", "-n", "-a")) for flag in request.flags):
            raise NoRecipe("its go build flags change how every package compiles")
        with self._lock:
            self._next += 1
            work = self.work / str(self._next)
        shutil.rmtree(work, ignore_errors=True)
        cwd = request.command.module_dir
        args = build_args([request], work / "unused")
        show = [args[0], "-n", f"-gcflags={request.command.import_path}={SHOW_COMPILE_FLAG}", *args[1:]]
        scripts = []
        for dry_run in (show, [args[0], "-n", *args[1:]]):
            done = self.go.run([*NICE[1:], self.go.binary, *dry_run] if NICE else dry_run, cwd, _env(request),
                               program=NICE[0] if NICE else None)
            if done.returncode != 0:
                raise NoRecipe(f"go build -n failed: {done.stderr.strip()[:200]}")
            scripts.append(done.stderr)
        recipe = read_recipe(request.command.import_path, scripts[0], scripts[1], cwd, work)
        if "vcs.modified=false" in recipe.build_info:
            raise NoRecipe("its checkout is clean: the next edit changes the build info go embeds")
        recipe.prepare()
        return recipe

    def build(self, requests: Sequence[BuildRequest], out_dir: Path, superseded: Callable[[], bool] | None = None,
              on_package: Callable[[str], None] | None = None) -> list[Binary] | None:
        """The binaries of `requests` by their recipes, or None where go build must run (see the module)."""
        with self._lock:
            learned = [self._learned.get(request) for request in requests]
        usable = [entry for entry in learned if entry is not None and _only_main_changed(entry)]
        if len(usable) != len(requests):
            return None
        binaries = []
        for index, (request, entry) in enumerate(zip(requests, usable, strict=True)):
            if superseded is not None and superseded():
                raise Superseded
            started = time.monotonic()
            if on_package is not None:
                on_package(request.command.import_path)
            built = self._run(entry.recipe, _env(request), _vcs_check(entry.recipe, request.command.module_dir),
                              superseded)
            if built is None:
                return None
            seconds = time.monotonic() - started
            target = out_dir / f"direct{index}" / request.command.app_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # a new file: a swapped-in hard link never changes under an app
            os.replace(built, target)
            binaries.append(Binary(request.command, target, file_digest(target), seconds))
        return binaries

    def _run(self, recipe: Recipe, env: dict[str, str], vcs: Future[bool] | None = None,
             superseded: Callable[[], bool] | None = None, prefix: tuple[str, ...] = ()) -> Path | None:
        """Compile and link by `recipe`; the binary, or None when a step failed or the build info is stale.
        Raises Superseded when `superseded` says so while a step runs."""
        if not recipe.applies():
            return None
        environ = {**os.environ, **self.go.env, **env}
        for step in (recipe.compile, recipe.link):
            done = step.run(environ, superseded or (lambda: False), prefix)
            if done is None:
                raise Superseded
            if done[0] != 0:
                log.debug("direct %s failed: %s", os.path.basename(step.argv[0]), done[1])
                return None
        if vcs is not None and not vcs.result():
            return None
        return recipe.output

    def close(self) -> None:
        """A learning under way gives up at its next step (a dry run ends, a compile or link is killed), and
        is waited for: its files are in the loop's scratch directory, which goes when the loop ends."""
        self._closed.set()
        self._learning.shutdown(wait=True, cancel_futures=True)


def _env(request: BuildRequest) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in request.env)


def _only_main_changed(entry: Learned) -> bool:
    now = entry.sources.stamps()
    changed = {path for path in now.keys() | entry.stamps.keys() if now.get(path) != entry.stamps.get(path)}
    return all(path in now and path in entry.stamps for path in changed) and changed <= set(entry.recipe.sources)


def _vcs_check(recipe: Recipe, module_dir: Path) -> Future[bool] | None:
    """Whether go would still embed the recipe's VCS facts (HEAD, a modified tree), asked beside the compile."""
    if "vcs.revision=" not in recipe.build_info:
        return None
    future: Future[bool] = Future()

    def ask() -> None:
        try:
            head = _git(module_dir, "rev-parse", "HEAD")
            status = _git(module_dir, "status", "--porcelain")
            future.set_result(bool(status.strip()) and f"vcs.revision={head.strip()}" in recipe.build_info)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("git failed: %s", exc)
            future.set_result(False)

    threading.Thread(target=ask, name="vcs", daemon=True).start()
    return future


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True).stdout


def _entries(directory: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            yield from entries
    except OSError:
        return


def _stamp(path: Path, found: dict[Path, Stamp]) -> None:
    try:
        info = path.stat()
    except OSError:
        return
    found[path] = (info.st_mtime_ns, info.st_size, info.st_ino)


