"""Stage 'loop': startup -> for each batch of changes: decide, rebuild, deliver -> shutdown (Ctrl-C, SIGTERM).

One main thread does all the work; the file watcher and one log thread per container only put typed
messages on a queue. Changes that arrive during a build wait in the queue and are merged into one
follow-up build, so the result always reflects the last save. If the Docker daemon goes away, the loop
says so once, keeps watching, retries with backoff, and rebuilds and restarts everything when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from kodev import cache
from kodev.affected import Decision, decide
from kodev.coalesce import Coalescer, RawChanges
from kodev.containers import Containers, LogFollower, Owner
from kodev.daemon import reason
from kodev.deliver import Delivered, Delivery
from kodev.deliver.choose import deliveries_for
from kodev.deliver.compose import ComposeService, ComposeStack
from kodev.deliver.supervision import Supervision
from kodev.errors import ConfigError, DaemonError, KodevError, reworded
from kodev.events import FileWatcher, Message, ServiceExited, WatchFailed, normalize
from kodev.gomod import ModuleGraph, load_graph
from kodev.health import DaemonHealth
from kodev.rebuild import DaemonLost, Rebuild, WatchedCommand
from kodev.session import CommandServices, Session
from kodev.signals import interrupts_as_keyboard, shielded
from kodev.ui import SERVICE_COLORS

log = logging.getLogger(__name__)


class DevLoop:
    """The watch loop for `kodev watch` and `kodev run --watch`.

    `watch_paths` are the command-line paths of `kodev watch` (read again with kodev.toml when it
    changes); None for `kodev run --watch`, whose container settings come from flags.
    """

    def __init__(self, session: Session, commands: list[CommandServices], prefix_logs: bool,
                 watch_paths: list[str] | None = None, stack: ComposeStack | None = None, swap: bool = True) -> None:
        self.session = session
        self.stack = stack
        self.containers = Containers(session.daemon.client, Owner.current())
        self.supervision = Supervision(session.go, session.daemon.client, self.containers.owner) if swap else None
        self.ui = session.ui
        self.prefix_logs = prefix_logs
        self.watch_paths = watch_paths
        self.messages: queue.Queue[Message] = queue.Queue()
        self.watcher = FileWatcher(self.messages, session.config.watch, session.config.root)
        self.health = DaemonHealth(session.daemon, session.ui)
        self.graph: ModuleGraph | None = None
        self.graph_failed = False
        self.scratch = Path()
        self.config_rejected = False  # the last kodev.toml saved was refused (restoring it is news)
        self.reload_pending = False  # a reload failed for another file's fault (go.mod): retried on any save
        self.coalescer = Coalescer(self.messages, self._on_message)
        self._use(session, commands)

    def _use(self, session: Session, commands: list[CommandServices]) -> None:
        """Take a (new) session and its commands: deliveries, log colors, the rebuild rounds."""
        self.session = session
        self.commands = [WatchedCommand(c.plan, deliveries_for(c.specs, c.compose, self.containers, self.stack,
                                                               self.supervision, c.plan.command.app_name))
                         for c in commands]
        services = [d.service for c in self.commands for d in c.deliveries if d.service]
        if self.stack is not None:  # the project's other services log too
            services += [s.name for s in self.stack.project.services if s.name not in services]
        self.colors = {name: SERVICE_COLORS[i % len(SERVICE_COLORS)] for i, name in enumerate(services)}
        self.width = max((len(n) for n in services), default=0)
        self.ui.align([c.plan.name for c in self.commands])
        self.rebuild = Rebuild(session.builder, session.publisher, session.daemon, self.ui, self.commands,
                               self.scratch, self._follow, strip=session.config.watch.strip)

    @property
    def deliveries(self) -> list[Delivery]:
        return [d for c in self.commands for d in c.deliveries]

    def run(self) -> int:
        """Build, start, watch; on Ctrl-C or SIGTERM stop and remove this session's containers.

        Exits 0, or 1 when the containers could not be cleaned up (the next kodev removes them)."""
        with interrupts_as_keyboard(), tempfile.TemporaryDirectory(prefix="watch-", dir=cache.subdir("tmp")) as tmp:
            self.scratch = self.rebuild.scratch = Path(tmp)
            try:
                self.startup()
                for changes in self.batches():
                    with self._daemon_guard("rebuild"):
                        self.on_changes(changes)
            except KeyboardInterrupt:
                self.ui.note("stopping…")
            finally:
                with shielded():
                    cleaned = self.shutdown()
        return 0 if cleaned else 1

    # --- startup ---------------------------------------------------------------------------------

    def startup(self) -> None:
        reaped = self.containers.reap_orphans()
        if reaped:
            self.ui.info(f"removed containers left by a kodev that is gone: {', '.join(reaped)}")
        for delivery in self.deliveries:
            delivery.prepare()  # e.g. a container name taken by someone else fails before any build
        failure = self._load_graph()
        if failure is not None:
            raise failure
        self._watch()  # before the first build, so that a save during it is not missed
        self.rebuild.run({c.import_path for c in self.commands}, set())
        if self.stack is not None:
            self._start_stack()
        assert self.graph is not None
        self.watcher.wait_ready()
        self.ui.watching(self.graph.roots)

    def _start_stack(self) -> None:
        """The compose project, up as a whole once every kodev service has its image; logs followed."""
        assert self.stack is not None
        started = time.monotonic()
        running = self.stack.start()
        self.ui.info(f"compose project {self.stack.project.name} is up ({time.monotonic() - started:.2f}s): "
                     f"{', '.join(sorted(running)) or 'no containers'}")
        composed = {d.service: d for d in self.deliveries if isinstance(d, ComposeService)}
        for service, container_id in running.items():
            if service in composed:
                composed[service].adopt(container_id)
            self._follow(Delivered(service, "started", 0.0, container_id))

    def _watch(self) -> None:
        """(Re)start the watcher when the directories to watch changed."""
        assert self.graph is not None
        roots = list(self.graph.roots)
        files = [self.session.config.path, *(self.stack.project.files if self.stack else ())]
        for file in files:
            if file is not None and not any(file.is_relative_to(root) for root in roots):
                roots.append(file)  # kodev.toml or a compose file outside the module: watch the file itself
        if tuple(roots) != self.watcher.roots:
            self.watcher.start(roots)

    def _load_graph(self) -> KodevError | None:
        """Load the package graph again; the error (the last good graph stays) or None."""
        commands = [c.plan.command for c in self.commands]
        started = time.monotonic()
        try:
            self.graph = load_graph(self.session.go, commands, commands[0].module_dir)
        except KodevError as exc:
            self.graph_failed = True
            return exc
        self.graph_failed = False
        git = self.session.builder.heads(commands)
        for command in self.commands:
            command.update_sources(self.session.builder, git.get(command.plan.command.module_dir))
        self.ui.graph_loaded(self.graph, time.monotonic() - started)
        return None

    # --- the loop --------------------------------------------------------------------------------

    def batches(self) -> Iterator[RawChanges]:
        """Batches of file changes, merged while they keep coming; exits and health are handled between."""
        while True:
            changes = self.coalescer.next_round(self.rebuild.started)
            if changes is None:
                with self._daemon_guard("check on the Docker daemon"):
                    self._check_health()
            elif not self.health.down:  # while it is down, the rebuild on its return covers them
                yield changes

    def _on_message(self, message: Message) -> None:
        if isinstance(message, ServiceExited):
            with self._daemon_guard("follow a service's exit"):
                self._on_exit(message)
        elif isinstance(message, WatchFailed):
            self.ui.warn(f"file watching stopped: {message.error}. Restart kodev to resume.")

    def on_changes(self, raw: RawChanges) -> None:
        assert self.graph is not None
        config_file = self.session.config.path
        if (config_file is not None and (self.reload_pending or any(Path(p) == config_file for _, p in raw))
                and self._reload_config()):
            return  # the new configuration was applied with a full rebuild
        if self.stack is not None and any(Path(p) in self.stack.project.files for _, p in raw):
            self._reload_compose()
        changes = list(normalize(raw, self.graph))
        decision = decide(changes, self.graph, {c.import_path: c.sources for c in self.commands})
        if decision.refresh_graph or self.graph_failed:  # a failed graph is tried again on any save
            recovering = self.graph_failed
            failure = self._load_graph()
            if failure is not None:
                self.ui.changes(changes, self.session.config.root)
                self.ui.error(failure)
                self.ui.warn(f"{self._keeping()}; kodev tries again on your next save.")
                return
            assert self.graph is not None
            decision = decision.merge(decide(changes, self.graph, {}))
            self._watch()
            if recovering:  # whatever failed meanwhile (a reload, a dependency bump) is built now
                decision = decision.merge(Decision(frozenset(c.import_path for c in self.commands), frozenset(),
                                                   False))
        if decision.rebuild or decision.reimage:
            affected = decision.rebuild | decision.reimage
            self.ui.changes(changes, self.session.config.root,
                            [c.plan.name for c in self.commands if c.import_path in affected])
            self._rebuild(set(decision.rebuild), decision.reimage)

    @contextlib.contextmanager
    def _daemon_guard(self, doing: str) -> Iterator[None]:
        """A daemon call between rounds failed (the SDK's errors are OSErrors): a daemon that went away is
        waited for like any other time it does; anything else is reported, and the loop goes on."""
        import urllib3

        try:
            yield
        except DaemonLost:
            self.health.lost()
        except (OSError, urllib3.exceptions.HTTPError, DaemonError) as exc:
            if not self.session.daemon.reachable():
                self.health.lost()
                return
            log.debug("%s failed", doing, exc_info=True)
            self.ui.error(exc if isinstance(exc, KodevError) else DaemonError(
                f"kodev could not {doing}: {reason(exc)}. The running containers keep what they have; save "
                "again to retry."))

    def _rebuild(self, compile_these: set[str], reimage_these: frozenset[str] = frozenset()) -> None:
        try:
            self.rebuild.run(compile_these, set(reimage_these))
        except DaemonLost:
            self.health.lost()

    def _rebuild_all(self) -> None:
        self._rebuild({c.import_path for c in self.commands})

    def _keeping(self) -> str:
        return ("the running containers keep the last good build" if any(d.container() for d in self.deliveries)
                else "nothing was rebuilt")

    def _reload_config(self) -> bool:
        """Apply a changed kodev.toml; a broken one is reported and the last good one kept.

        The new configuration is built first while the old workloads serve: each new delivery takes over
        the container of the same service, and its first release replaces it. A compile error or a graph
        that does not load leaves them serving. Services the new file no longer names are stopped."""
        path = self.session.config.path
        if self.watch_paths is None or path is None:
            return False
        self.reload_pending = False
        try:
            reloaded = self.session.reload(self.watch_paths)
        except ConfigError as exc:  # the file's fault: applied when a good one is saved
            message = str(exc).removesuffix(" and run again.").removesuffix(".")
            self.ui.config_rejected(path, reworded(exc, f"{message}. kodev keeps running with the last good "
                                                        f"{path.name} until you save one that works."))
            self.config_rejected = True
            return True
        except KodevError as exc:  # not the file's (go.mod, a package): tried again on the next save
            message = str(exc).removesuffix(".")
            self.ui.config_rejected(path, reworded(exc, f"{message}. kodev applies {path.name} once this is "
                                                        "fixed: it tries again on your next save."))
            self.reload_pending = True
            return True
        if reloaded is None:  # the same configuration: back to the last good one after a rejected edit?
            if self.config_rejected:
                self.config_rejected = False
                self.ui.config_reloaded(path)
            return False
        self.config_rejected = False
        session, commands = reloaded
        self.ui.config_reloaded(path)
        previous = {c.import_path: c for c in self.commands}
        left = self.deliveries
        self._use(session, commands)
        for command in self.commands:
            if command.import_path in previous:
                command.take_over(previous[command.import_path])
            for delivery in command.deliveries:
                taken = next((old for old in left if delivery.take_over(old)), None)
                if taken is not None:
                    left.remove(taken)
        self._stop(left)
        if session.config.watch != self.watcher.settings:  # new watch settings: a new watcher, at once
            self.watcher.stop()
            self.watcher = FileWatcher(self.messages, session.config.watch, session.config.root)
            self._watch()
        failure = self._load_graph()
        if failure is not None:
            self.ui.error(failure)
            self.ui.warn(f"{self._keeping()}; kodev tries again on your next save.")
            return True
        self._watch()
        self._rebuild_all()
        return True

    def _stop(self, deliveries: list[Delivery]) -> None:
        """Stop the workloads of services a reloaded kodev.toml no longer names."""
        for delivery in deliveries:
            container = delivery.container()
            delivery.close()
            if container is not None and delivery.service is not None and not isinstance(delivery, ComposeService):
                self.containers.remove(container, delivery.stop_timeout)

    def _reload_compose(self) -> None:
        """A compose file changed: Compose applies it; a broken one leaves the running project as it is."""
        from kodev.compose import ComposeError, load_with_own_refs

        assert self.stack is not None
        old = self.stack.project
        try:
            project = load_with_own_refs(self.session, self.stack.cli, old.files, old.name if old.explicit_name
                                         else None)
            if [s.name for s in project.kodev_services] != [s.name for s in old.kodev_services]:
                self.ui.warn("the compose file now names other kodev services: restart kodev watch to build them; "
                             "the other changes are applied.")
            running = self.stack.apply(project)
        except ComposeError as exc:
            self.ui.error(reworded(exc, f"{exc} The running project stays as it is; fix the file and save again."))
            return
        self.ui.info(f"compose project {project.name} updated")
        following = {d.container() for d in self.deliveries}
        for service, container_id in running.items():
            for delivery in self.deliveries:
                if delivery.service == service and isinstance(delivery, ComposeService):
                    delivery.adopt(container_id)
            if container_id not in following:
                self._follow(Delivered(service, "started", 0.0, container_id))

    # --- workloads: logs, exits, health ----------------------------------------------------------------

    def _follow(self, delivered: Delivered) -> None:
        if delivered.container_id:
            client = self.session.daemon.open_client()  # two streams held for the container's life
            LogFollower(client, delivered.service, delivered.container_id, self._on_line, self._exited,
                        close_client=client is not self.session.daemon.client).start()

    def _on_line(self, service: str, stream: str, line: str) -> None:
        if self.prefix_logs:
            self.ui.service_line(service, self.colors.get(service, "white"), self.width, line, stream)
        else:
            self.ui.raw(stream, line, service)

    def _exited(self, service: str, container_id: str, code: int | None, lines: list[str]) -> None:
        self.messages.put(ServiceExited(service, container_id, code, tuple(lines)))

    def _on_exit(self, exited: ServiceExited) -> None:
        delivery = next((d for d in self.deliveries if d.owns(exited.container_id)), None)
        if delivery is None:
            return  # a container we replaced or removed ourselves
        code = exited.code
        if code is None:  # its log stream broke without an exit code: is the daemon still there?
            if not self.session.daemon.reachable():
                self.health.lost()
                return
            code = self.containers.exit_code(exited.container_id)
            if code is None and not self.containers.exists(exited.container_id):
                self.ui.warn(f"the container of {exited.service} is gone; recreating it")
                self._recover()
                return
            if code is None:
                return
        delivery.lost()
        self.health.soon()  # a daemon shutting down stops its containers first
        self.ui.service_exited(exited.service, code, exited.last_lines)

    def _check_health(self) -> None:
        """Every few idle seconds: is the daemon there, and are our containers?"""
        if not self.health.due():
            return
        was_down = self.health.down
        if not self.health.check():
            return
        if was_down:
            self._recover()
            return
        try:
            vanished = [d.service for d in self.deliveries
                        if d.container() and not self.containers.exists(d.container() or "")]
        except OSError:  # the SDK's connection errors: gone between the ping and now
            self.health.lost()
            return
        if vanished:
            self.ui.warn(f"the container of {', '.join(s for s in vanished if s)} is gone (removed, or the daemon "
                         "restarted); recreating")
            self._recover()

    def _recover(self) -> None:
        """After the daemon restarted: publish every image again and recreate every workload."""
        for command in self.commands:
            command.image = None  # the daemon may have lost the image: send it again
            for delivery in command.deliveries:
                delivery.lost()
        failure = self._load_graph()  # files may have been added while it was away
        if failure is not None:
            self.ui.error(failure)
            return
        self._rebuild_all()

    # --- shutdown --------------------------------------------------------------------------------

    def shutdown(self) -> bool:
        """Stop watching, stop and remove this session's containers (stop the compose project). False if
        some could not be cleaned up."""
        self.watcher.stop()
        cleaned = self._stop_workloads()
        if self.stack is not None:
            try:
                done = self.stack.shutdown()
            except KodevError as exc:
                self.ui.error(exc)
                return False
            if done:
                self.ui.info(done)
        return cleaned

    def _stop_workloads(self) -> bool:
        for delivery in self.deliveries:
            delivery.close()
        timeouts = {d.service: d.stop_timeout for d in self.deliveries if d.service}
        try:
            removed = self.containers.cleanup(timeouts)
        except KodevError as exc:
            left = [d.service or "" for d in self.deliveries if d.container()]
            self.ui.error(reworded(exc, f"{exc}. Left behind: {', '.join(left) or 'nothing kodev knows of'}; the next "
                                     "kodev removes them (they are labelled with this kodev, which is gone then)."))
            return False
        if removed:
            self.ui.info(f"removed {', '.join(removed)}")
        return True
