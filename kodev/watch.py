"""Stage 'loop': file events -> batch -> decide -> build -> load -> restart, until Ctrl-C or SIGTERM.

One main thread does all the work; the file watcher and one log thread per container only put messages
on a queue. Changes that arrive during a build wait in the queue and are merged into one follow-up build,
so the result always reflects the last save. If the Docker daemon goes away, the loop says so once,
keeps watching, retries with backoff, and rebuilds and restarts everything when it is back.
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import time
from pathlib import Path
from typing import Any

from kodev import cache
from kodev import config as config_stage
from kodev.affected import decide
from kodev.containers import Containers, LogFollower, Owner, Replacement
from kodev.errors import CompileError, DaemonError, KodevError
from kodev.events import SETTLE_MAX_SECONDS, FileWatcher, describe, normalize, settle_seconds
from kodev.gomod import ModuleGraph, load_graph
from kodev.health import DaemonPacer
from kodev.image import kodata
from kodev.image.layers import Layer
from kodev.session import Session, Target
from kodev.signals import interrupts_as_keyboard, shielded
from kodev.templates import GitHead
from kodev.ui import SERVICE_COLORS, human_bytes


class DevLoop:
    """The watch loop for `kodev watch` and `kodev run --watch`.

    `watch_paths` are the command-line paths of `kodev watch` (re-read with kodev.toml when it changes);
    None for `kodev run --watch`, whose container settings come from flags.
    """

    def __init__(self, session: Session, targets: list[Target], prefix_logs: bool,
                 watch_paths: list[str] | None = None) -> None:
        self.session = session
        self.ui = session.ui
        self.builder = session.builder
        self.targets = targets
        self.prefix_logs = prefix_logs
        self.watch_paths = watch_paths
        self.client = session.daemon.client
        self.containers = Containers(self.client, Owner.current())
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.watcher = FileWatcher(self.messages, session.config.watch, session.config.root)
        self.running: dict[str, str] = {}  # service -> container id
        self.exited: set[str] = set()
        self.graph: ModuleGraph | None = None
        self.pacer = DaemonPacer()
        self._layer_seconds = 0.0
        self._round_started = 0.0
        self._name_services()

    def _name_services(self) -> None:
        names = [s.service for t in self.targets for s in t.specs]
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
        if not self._refresh_graph():
            raise KodevError("cannot load the package graph (see above); fix it and start kodev again.")
        self._watch_roots()  # before the first build, so that a save during it is not missed
        self._rebuild({t.plan.command.import_path for t in self.targets}, set())
        assert self.graph is not None
        self.ui.note(f"watching {', '.join(str(r) for r in self.graph.roots)} — save a file to rebuild; "
                     "Ctrl-C to stop")

    def _watch_roots(self) -> None:
        assert self.graph is not None
        roots = list(self.graph.roots)
        config_file = self.session.config.path
        if config_file is not None and not any(config_file.is_relative_to(root) for root in roots):
            roots.append(config_file)  # kodev.toml outside the module: watch the file itself
        if tuple(roots) != self.watcher.roots:
            self.watcher.start(roots)

    def _shutdown(self) -> None:
        self.watcher.stop()
        timeouts = {s.service: s.stop_timeout for t in self.targets for s in t.specs}
        try:
            removed = self.containers.cleanup(timeouts)
        except KodevError as exc:
            self.ui.error(exc)
            return
        if removed:
            self.ui.info(f"removed {', '.join(removed)}")

    # --- messages --------------------------------------------------------------------------------

    def _on_line(self, service: str, stream: str, line: str) -> None:
        if self.prefix_logs:
            self.ui.service_line(service, self.colors.get(service, "white"), self.width, line)
        else:
            self.ui.raw(stream, line)

    def _on_exit(self, service: str, container_id: str, code: int | None, lines: list[str]) -> None:
        self.messages.put(("exit", (service, container_id, code, lines)))

    def _step(self) -> None:
        backlog = not self.messages.empty()  # events piled up while we were busy: a storm, perhaps
        try:
            kind, payload = self.messages.get(timeout=0.5)
        except queue.Empty:
            self._check_health()
            return
        pending: set[tuple[str, str]] = set()
        batches = 0
        deadline = time.monotonic() + SETTLE_MAX_SECONDS
        while True:
            if kind == "files":
                pending |= payload
                batches += 1
            elif kind == "exit":
                self._report_exit(*payload)
            elif kind == "watch-error":
                self.ui.warn(f"file watching stopped: {payload}. Restart kodev to resume.")
            try:
                wait = settle_seconds(backlog and bool(pending), batches, self._round_started, deadline)
                kind, payload = self.messages.get(timeout=wait)
            except queue.Empty:
                break
        if pending and not self.pacer.down:  # while it is down, the rebuild on its return covers them
            self._on_changes(pending)

    def _check_health(self) -> None:
        """Every few idle seconds: is the daemon there, and are our containers? (A ping: cheap.)"""
        if not self.pacer.due():
            return
        if self.pacer.down:
            self._retry_daemon()
            return
        self.pacer.checked()
        if not self.session.daemon.reachable():
            self._daemon_lost()
            return
        try:
            vanished = [service for service, container_id in self.running.items()
                        if not self.containers.exists(container_id)]
        except OSError:  # the SDK's connection errors: gone between the ping and now
            self._daemon_lost()
            return
        if vanished:
            self.ui.warn(f"the container of {', '.join(vanished)} is gone (removed, or the daemon restarted); "
                         "recreating")
            self._recover()

    def _report_exit(self, service: str, container_id: str, code: int | None, lines: list[str]) -> None:
        if self.running.get(service) != container_id:
            return  # a container we replaced or removed ourselves
        if code is None:  # its log stream broke without an exit code: is the daemon still there?
            if not self.session.daemon.reachable():
                self._daemon_lost()
                return
            code = self.containers.exit_code(container_id)
            if code is None and not self.containers.exists(container_id):
                # The daemon restarted (or someone removed it): bring everything back as on reconnect.
                self.ui.warn(f"the container of {service} is gone; recreating it")
                self._recover()
                return
            if code is None:
                return
        self.exited.add(service)
        self.pacer.soon()  # a daemon shutting down stops its containers first
        if code == 0:
            self.ui.info(f"{service} exited with code 0; the next good build starts it again.")
            return
        tail = f" Its last output: {lines[-1]!r}." if lines else ""
        self.ui.warn(f"{service} exited with code {code}.{tail} The next good build starts it again.")

    # --- decide ----------------------------------------------------------------------------------

    def _on_changes(self, raw: set[tuple[str, str]]) -> None:
        assert self.graph is not None
        config_file = self.session.config.path
        if config_file is not None and any(Path(p) == config_file for _, p in raw) and self._reload_config():
            return  # the new configuration was applied with a full rebuild
        changes = list(normalize(raw, self.graph))
        decision = decide(changes, self.graph, {t.plan.command.import_path: t.sources for t in self.targets})
        if decision.refresh_graph and self._refresh_graph():
            decision = decision.merge(decide(changes, self.graph, {}))
            self._watch_roots()
        if decision.rebuild or decision.reimage:
            self.ui.info(f"changed: {describe(changes, self.session.config.root)}")
            self._rebuild(set(decision.rebuild), set(decision.reimage))

    def _reload_config(self) -> bool:
        """Apply a changed kodev.toml; a broken one is reported and the last good one kept."""
        if self.watch_paths is None or self.session.config.path is None:
            return False
        old = self.session.config
        try:
            new = config_stage.load(old.path, self.session.cwd)
            if new == old:
                return False
            self._use_config(new)
            targets = self.session.watch_targets(self.watch_paths)
        except KodevError as exc:
            self._use_config(old)
            self.ui.error(exc)
            self.ui.warn(f"kodev keeps running with the last good {old.path.name if old.path else 'config'}; "
                         "fix it and save again.")
            return True
        self.ui.note(f"{old.path} changed: applying it (services are recreated)")
        self._shutdown()
        self.running.clear()
        self.exited.clear()
        self.targets = targets
        self._name_services()
        self.watcher.settings = new.watch
        self.watcher.roots = ()  # restart with the new settings
        if self._refresh_graph():
            self._rebuild({t.plan.command.import_path for t in self.targets}, set())
            self._watch_roots()
        return True

    def _use_config(self, config: config_stage.Config) -> None:
        self.session.config = config
        self.builder.use_config(config)

    # --- the daemon going away and coming back ------------------------------------------------------

    def _daemon_lost(self) -> None:
        if not self.pacer.lost():
            return
        self.ui.warn(f"the Docker daemon at {self.session.daemon.endpoint} is not answering. kodev keeps "
                     "watching and retries; when it is back, everything is rebuilt and restarted.")

    def _retry_daemon(self) -> None:
        if not self.session.daemon.reachable():
            self.pacer.retry_failed()
            return
        self.pacer.back()
        self.ui.note("the Docker daemon is back: rebuilding and restarting")
        self._recover()

    def _recover(self) -> None:
        """After the daemon restarted: load every image again and recreate every container."""
        for target in self.targets:
            target.loaded = None  # the daemon may have lost the image: load it again
        self.exited |= set(self.running)  # and may have lost the containers: recreate them
        self._refresh_graph()  # files may have been added while it was away
        self._rebuild({t.plan.command.import_path for t in self.targets}, set())

    def _refresh_graph(self) -> bool:
        commands = [t.plan.command for t in self.targets]
        started = time.monotonic()
        try:
            self.graph = load_graph(self.session.go, commands, commands[0].module_dir)
        except KodevError as exc:
            self.ui.error(exc)
            return False
        git = self.builder.heads(commands)
        for target in self.targets:
            self._update_sources(target, git.get(target.plan.command.module_dir))
        self.ui.info(f"package graph: {len(self.graph.packages)} packages ({time.monotonic() - started:.2f}s)")
        return True

    def _update_sources(self, target: Target, git: GitHead | None) -> None:
        command = target.plan.command
        with contextlib.suppress(KodevError):  # a broken link is reported by the build itself
            target.sources = kodata.sources(command.dir / kodata.KODATA_DIR,
                                            self.builder.allowed_root(command, git))

    # --- build, load, restart --------------------------------------------------------------------

    def _rebuild(self, compile_these: set[str], reimage_these: set[str]) -> None:
        self._round_started = time.monotonic()
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
                layering = time.monotonic()
                for target, binary in zip(compiling, binaries, strict=True):
                    tops[target.plan.command.import_path] = self.builder.binary_layer(target.plan, binary)
                self._layer_seconds = (time.monotonic() - layering) / max(len(compiling), 1)
        git = self.builder.heads([t.plan.command for t in self.targets])  # once per round: HEAD may move
        done = {t.plan.command.import_path for t in compiling}
        others = [by_path[p] for p in sorted(reimage_these - done) if p in by_path and by_path[p].top]
        for target in [*compiling, *others]:
            top = tops.get(target.plan.command.import_path) or target.top
            assert top is not None
            try:
                self._publish(target, top, go_seconds if target in compiling else None,
                              git.get(target.plan.command.module_dir))
            except (KodevError, OSError) as exc:  # the SDK's errors are OSErrors (requests)
                if not self.session.daemon.reachable():
                    self._daemon_lost()
                    return
                if not isinstance(exc, KodevError):
                    exc = DaemonError(f"the Docker daemon failed while publishing {target.plan.name}: {exc}")
                self.ui.error(exc)
        self.builder.prune({layer.path for t in self.targets for layer in t.layers})

    def _publish(self, target: Target, top: Layer, go_seconds: float | None, git: GitHead | None) -> None:
        plan = target.plan
        started = time.monotonic()
        image = self.builder.image(plan, top, git)
        self._update_sources(target, git)
        image_seconds = time.monotonic() - started
        if go_seconds is not None:  # the binary layer was made right after go build: image work too
            image_seconds += self._layer_seconds
            started -= self._layer_seconds
        go_part = f"go {go_seconds:.2f}s, " if go_seconds is not None else ""
        stopped = [s for s in target.specs if s.service in self.exited or s.service not in self.running]
        if image.config_digest == target.loaded and not stopped:
            self.ui.stage(plan.name, "unchanged", time.monotonic() - started + (go_seconds or 0),
                          f"({go_part}image {image_seconds:.2f}s) — same binary and kodata, nothing restarted")
            return
        loaded = None
        first = target.loaded is None
        previous = target.image_id
        changed = image.config_digest != target.loaded
        replacing = self._begin_replacements(target, changed)  # old containers stop while the image loads
        if changed:
            try:
                loaded = self.builder.load(plan, image)
            except Exception:
                for service, replacement in replacing.items():
                    replacement.undo()
                    self.running[service] = replacement.old_id
                raise
            target.image_id = loaded.image_id
            target.top, target.loaded, target.layers = top, image.config_digest, image.layers
        restart_started = time.monotonic()
        self._restart(target, replacing)
        restart_seconds = time.monotonic() - restart_started
        total = time.monotonic() - started + (go_seconds or 0)
        load_part = f", load {loaded.seconds:.2f}s" if loaded else ""
        sent = f" · {human_bytes(loaded.bytes_sent)} sent" if loaded else ""
        restart_part = f", restart {restart_seconds:.2f}s" if target.specs else ""
        self.ui.stage(plan.name, "built in" if first else "rebuilt in", total,
                      f"({go_part}image {image_seconds:.2f}s{load_part}{restart_part}){sent}")
        if loaded is not None and previous and previous != target.image_id:
            self.session.daemon.forget(previous)  # its container is gone now; after the line, off the clock

    def _begin_replacements(self, target: Target, changed: bool) -> dict[str, Replacement]:
        """Start stopping the containers this build replaces: all on a new image (but running `restart =
        false` ones), else only those that exited."""
        replacing = {}
        for spec in target.specs:
            old = self.running.get(spec.service)
            if old and (spec.service in self.exited or (changed and spec.restart)):
                del self.running[spec.service]  # its exit is expected now, not news
                replacing[spec.service] = Replacement(self.containers, old, spec)
        return replacing

    def _restart(self, target: Target, replacing: dict[str, Replacement]) -> None:
        for spec in target.specs:
            if spec.service in replacing:
                container_id = replacing[spec.service].finish(target.plan.ref)
            elif spec.service in self.running:
                continue  # restart = false: started once, then left alone
            else:
                container_id = self.containers.create_and_start(spec, target.plan.ref)
            self.running[spec.service] = container_id
            self.exited.discard(spec.service)
            LogFollower(self.client, spec.service, container_id, self._on_line, self._on_exit).start()
