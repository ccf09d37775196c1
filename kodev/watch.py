"""Stage 'loop': file events -> batch -> decide -> build -> load -> restart, until Ctrl-C or SIGTERM.

One main thread does all the work; a watcher thread and one log thread per container only put messages on
a queue. Changes that arrive during a build wait in the queue and are merged into one follow-up build,
so the result always reflects the last save.
"""

from __future__ import annotations

import contextlib
import queue
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from kodev import cache
from kodev.affected import Change, FileChange, decide, is_noise
from kodev.builder import CommandPlan
from kodev.containers import Containers, LogFollower, Owner
from kodev.errors import CompileError, KodevError
from kodev.gomod import ModuleGraph, load_graph
from kodev.image import kodata
from kodev.image.layers import Layer
from kodev.services import ContainerSpec
from kodev.session import Session
from kodev.signals import interrupts_as_keyboard, shielded
from kodev.templates import GitInfo
from kodev.ui import SERVICE_COLORS, human_bytes

_IMPORT = re.compile(r'^\s*(?:import\s+)?(?:[\w.]+\s+)?"([^"]+)"', re.M)
_IMPORT_BLOCK = re.compile(r"^import\s*\((.*?)\)", re.M | re.S)
_IMPORT_SINGLE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.M)
_CHANGE_NAMES = {1: "added", 2: "modified", 3: "deleted"}


@dataclass
class Target:
    """One command in the loop: its plan, the services running its image, and its last good build."""

    plan: CommandPlan
    specs: list[ContainerSpec]
    top: Layer | None = None  # the last good binary layer
    loaded: str | None = None  # config digest of the image last loaded
    image_id: str | None = None
    layers: tuple[Layer, ...] = ()  # of the image last loaded: kept in the cache
    sources: frozenset[Path] = field(default_factory=frozenset)  # kodata dir and its link targets


def imports_of(path: Path) -> set[str]:
    """The import paths a Go file names (a quick scan, enough to notice a new import)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    found = set(_IMPORT_SINGLE.findall(text))
    for block in _IMPORT_BLOCK.findall(text):
        found.update(_IMPORT.findall(block))
    return found


class DevLoop:
    def __init__(self, session: Session, targets: list[Target], prefix_logs: bool) -> None:
        self.session = session
        self.ui = session.ui
        self.builder = session.builder
        self.targets = targets
        self.prefix_logs = prefix_logs
        self.client = session.daemon.client
        self.containers = Containers(self.client, Owner.current())
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.running: dict[str, str] = {}  # service -> container id
        self.exited: set[str] = set()
        self.graph: ModuleGraph | None = None
        self._watcher: tuple[threading.Thread, threading.Event] | None = None
        names = [s.service for t in targets for s in t.specs]
        self.width = max((len(n) for n in names), default=0)
        self.colors = {name: SERVICE_COLORS[i % len(SERVICE_COLORS)] for i, name in enumerate(names)}

    # --- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        """Build, start, watch; on Ctrl-C or SIGTERM stop and remove this session's containers, exit 0."""
        with interrupts_as_keyboard(), tempfile.TemporaryDirectory(prefix="watch-", dir=cache.subdir("tmp")) as tmp:
            self.scratch = Path(tmp)
            try:
                self._start()
                while True:
                    self._step()
            except KeyboardInterrupt:
                self.ui.note("stopping…")
            finally:
                with shielded():
                    self._shutdown()
        return 0

    def _start(self) -> None:
        reaped = self.containers.reap_orphans()
        if reaped:
            self.ui.info(f"removed containers left by a kodev that is gone: {', '.join(reaped)}")
        for target in self.targets:
            for spec in target.specs:
                self.containers.claim_name(spec)  # a name taken by someone else fails before any build
        self._refresh_graph()
        self._rebuild({t.plan.command.import_path for t in self.targets}, set())
        assert self.graph is not None
        self._restart_watcher(self.graph.roots)
        self.ui.note(f"watching {', '.join(str(r) for r in self.graph.roots)} — save a file to rebuild; "
                     "Ctrl-C to stop")

    def _shutdown(self) -> None:
        if self._watcher:
            self._watcher[1].set()
        timeouts = {s.service: s.stop_timeout for t in self.targets for s in t.specs}
        try:
            removed = self.containers.cleanup(timeouts)
        except KodevError as exc:
            self.ui.error(exc)
            return
        if removed:
            self.ui.info(f"removed {', '.join(removed)}")

    # --- events ----------------------------------------------------------------------------------

    def _restart_watcher(self, roots: Iterable[Path]) -> None:
        if self._watcher:
            self._watcher[1].set()
            self._watcher[0].join(timeout=5)
        stop = threading.Event()
        thread = threading.Thread(target=self._watch, args=(tuple(roots), stop), name="watcher", daemon=True)
        self._watcher = (thread, stop)
        thread.start()

    def _watch(self, roots: tuple[Path, ...], stop: threading.Event) -> None:
        import watchfiles

        settings = self.session.config.watch
        try:
            for changes in watchfiles.watch(
                *roots, watch_filter=self._wanted, debounce=1600, step=max(settings.debounce_ms, 1),
                stop_event=stop, force_polling=True if settings.poll else None,
                poll_delay_ms=settings.poll_interval_ms, raise_interrupt=False,
            ):
                self.messages.put(("files", {(_CHANGE_NAMES[int(c)], p) for c, p in changes}))
        except Exception as exc:  # a root vanished, inotify limits: say so, keep the containers
            self.messages.put(("watch-error", exc))

    def _wanted(self, _change: Any, path: str) -> bool:
        if is_noise(Path(path)):
            return False
        root = self.session.config.root
        rel = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else path
        return not any(fnmatch(rel, pattern) for pattern in self.session.config.watch.ignore)

    def _on_line(self, service: str, stream: str, line: str) -> None:
        if self.prefix_logs:
            self.ui.service_line(service, self.colors.get(service, "white"), self.width, line)
        else:
            self.ui.raw(stream, line)

    def _on_exit(self, service: str, container_id: str, code: int, lines: list[str]) -> None:
        self.messages.put(("exit", (service, container_id, code, lines)))

    def _step(self) -> None:
        try:
            kind, payload = self.messages.get(timeout=0.5)
        except queue.Empty:
            return
        pending: set[tuple[str, str]] = set()
        while True:
            if kind == "files":
                pending |= payload
            elif kind == "exit":
                self._report_exit(*payload)
            elif kind == "watch-error":
                self.ui.warn(f"file watching stopped: {payload}. Restart kodev to resume.")
            try:
                kind, payload = self.messages.get_nowait()  # coalesce everything that is waiting
            except queue.Empty:
                break
        if pending:
            self._on_changes(pending)

    def _report_exit(self, service: str, container_id: str, code: int, lines: list[str]) -> None:
        if self.running.get(service) != container_id:
            return  # a container we replaced or removed ourselves
        self.exited.add(service)
        if code == 0:
            self.ui.info(f"{service} exited with code 0; the next good build starts it again.")
            return
        tail = f" Its last output: {lines[-1]!r}." if lines else ""
        self.ui.warn(f"{service} exited with code {code}.{tail} The next good build starts it again.")

    # --- decide ----------------------------------------------------------------------------------

    def _on_changes(self, raw: set[tuple[str, str]]) -> None:
        assert self.graph is not None
        changes = list(self._normalize(raw, self.graph))
        decision = decide(changes, self.graph, {t.plan.command.import_path: t.sources for t in self.targets})
        if decision.refresh_graph:
            old_roots = self.graph.roots
            if self._refresh_graph():
                decision = decision.merge(decide(changes, self.graph, {}))
                if self.graph.roots != old_roots:
                    self._restart_watcher(self.graph.roots)
        if decision.rebuild or decision.reimage:
            self.ui.info(f"changed: {self._describe(changes)}")
            self._rebuild(set(decision.rebuild), set(decision.reimage))

    def _describe(self, changes: list[FileChange]) -> str:
        """The changed files worth naming: not an editor's temp file that came and went."""
        root = self.session.config.root
        shown = sorted({str(c.path.relative_to(root)) if c.path.is_relative_to(root) else str(c.path)
                        for c in changes if c.change != "deleted" or c.path.suffix == ".go"})
        more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
        return f"{', '.join(shown[:3])}{more}" if shown else "files were removed"

    def _normalize(self, raw: set[tuple[str, str]], graph: ModuleGraph) -> Iterator[FileChange]:
        """One change per path from its final state: atomic saves and delete-then-create are 'modified'."""
        for path in sorted({Path(p) for _, p in raw}):
            package = graph.package_in(path.parent)
            known = package is not None and path.name in package.build_files | package.excluded_files
            change: Change = "deleted" if not path.exists() else ("modified" if known else "added")
            new_imports = False
            if change == "modified" and path.suffix == ".go" and package is not None:
                new_imports = not imports_of(path) <= package.imports | {"C"}
            yield FileChange(path, change, new_imports)

    def _refresh_graph(self) -> bool:
        commands = [t.plan.command for t in self.targets]
        started = time.monotonic()
        try:
            self.graph = load_graph(self.session.go, commands, commands[0].module_dir)
        except KodevError as exc:
            self.ui.error(exc)
            return False
        git = self.builder.git(commands)
        for target in self.targets:
            self._update_sources(target, git.get(target.plan.command.module_dir))
        self.ui.info(f"package graph: {len(self.graph.packages)} packages ({time.monotonic() - started:.2f}s)")
        return True

    def _update_sources(self, target: Target, git: GitInfo | None) -> None:
        command = target.plan.command
        with contextlib.suppress(KodevError):  # a broken link is reported by the build itself
            target.sources = kodata.sources(command.dir / kodata.KODATA_DIR,
                                            self.builder.allowed_root(command, git))

    # --- build, load, restart --------------------------------------------------------------------

    def _rebuild(self, compile_these: set[str], reimage_these: set[str]) -> None:
        by_path = {t.plan.command.import_path: t for t in self.targets}
        # Without a good binary yet there is nothing to re-image: compile instead.
        compile_these |= {p for p in reimage_these if by_path[p].top is None}
        compiling = [by_path[p] for p in sorted(compile_these) if p in by_path]
        tops: dict[str, Layer] = {}
        go_seconds: float | None = None
        if compiling:
            try:
                binaries, go_seconds = self.builder.compile([t.plan for t in compiling], self.scratch)
            except CompileError as exc:
                self.ui.error(exc)
                running = "the running containers keep the last good build" if self.running else "nothing runs yet"
                self.ui.warn(f"build failed; {running}. Save a fix to try again.")
                compiling = []
            else:
                for target, binary in zip(compiling, binaries, strict=True):
                    tops[target.plan.command.import_path] = self.builder.binary_layer(target.plan, binary)
        git = self.builder.git([t.plan.command for t in self.targets])  # once per round: HEAD may move
        done = {t.plan.command.import_path for t in compiling}
        others = [by_path[p] for p in sorted(reimage_these - done) if p in by_path and by_path[p].top]
        for target in [*compiling, *others]:
            top = tops.get(target.plan.command.import_path) or target.top
            assert top is not None
            try:
                self._publish(target, top, go_seconds if target in compiling else None,
                              git.get(target.plan.command.module_dir))
            except KodevError as exc:
                self.ui.error(exc)
        self.builder.prune({layer.path for t in self.targets for layer in t.layers})

    def _publish(self, target: Target, top: Layer, go_seconds: float | None, git: GitInfo | None) -> None:
        plan = target.plan
        started = time.monotonic()
        image = self.builder.image(plan, top, git)
        self._update_sources(target, git)
        image_seconds = time.monotonic() - started
        go_part = f"go {go_seconds:.2f}s, " if go_seconds is not None else ""
        stopped = [s for s in target.specs if s.service in self.exited or s.service not in self.running]
        if image.config_digest == target.loaded and not stopped:
            self.ui.stage(plan.name, "unchanged", time.monotonic() - started + (go_seconds or 0),
                          f"({go_part}image {image_seconds:.2f}s) — same binary and kodata, nothing restarted")
            return
        loaded = None
        first = target.loaded is None
        previous = target.image_id
        if image.config_digest != target.loaded:
            loaded = self.builder.load(plan, image)
            target.image_id = loaded.image_id
            target.top, target.loaded, target.layers = top, image.config_digest, image.layers
        restart_started = time.monotonic()
        self._restart(target)
        if loaded is not None and previous and previous != target.image_id:
            self.session.daemon.forget(previous)  # its container is gone now
        restart_seconds = time.monotonic() - restart_started
        total = time.monotonic() - started + (go_seconds or 0)
        load_part = f", load {loaded.seconds:.2f}s" if loaded else ""
        sent = f" · {human_bytes(loaded.bytes_sent)} sent" if loaded else ""
        restart_part = f", restart {restart_seconds:.2f}s" if target.specs else ""
        self.ui.stage(plan.name, "built in" if first else "rebuilt in", total,
                      f"({go_part}image {image_seconds:.2f}s{load_part}{restart_part}){sent}")

    def _restart(self, target: Target) -> None:
        for spec in target.specs:
            old = self.running.get(spec.service)
            if old and not spec.restart and spec.service not in self.exited:
                continue  # restart = false: started once, then left alone
            if old:
                self.containers.remove(old, spec.stop_timeout)
                del self.running[spec.service]
            container_id = self.containers.create_and_start(spec, target.plan.ref)
            self.running[spec.service] = container_id
            self.exited.discard(spec.service)
            LogFollower(self.client, spec.service, container_id, self._on_line, self._on_exit).start()
