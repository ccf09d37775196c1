"""Stage 'loop': startup -> for each batch of changes, one round (decide, build, publish, deliver) -> shutdown.

A lifecycle and nothing else, as uvicorn's reloader is. The file watcher and the log threads only put
typed messages on the inbox; `Coalescer` turns file events into rounds' worth of changes; the reloads,
the workloads and the daemon's health each say what they found — and only this loop starts rounds. If
the daemon goes away, the loop says so once, keeps watching, and rebuilds everything when it is back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from kodev import cache
from kodev.affected import Decision, decide
from kodev.coalesce import Coalescer, Inbox, RawChanges
from kodev.containers import Containers
from kodev.debug.delve import DebugSettings
from kodev.deliver.compose import ComposeStack
from kodev.deliver.supervision import Supervision
from kodev.directbuild import DirectBuilds, command_sources
from kodev.errors import KodevError
from kodev.events import FileWatcher, Message, ServiceExited, WatchFailed, normalize
from kodev.gomod import MainPackage
from kodev.graph_state import GraphState
from kodev.health import DaemonHealth, DaemonLost
from kodev.kube.reload import ManifestReload
from kodev.kube.stack import KubeStack
from kodev.ownership import Owner
from kodev.proxy.runner import Proxies
from kodev.proxy.spec import ProxySpec
from kodev.publish.pruning import sweep_holds
from kodev.rebuild import Rebuild
from kodev.reload import ConfigReload, Reloaded, StackReload
from kodev.session import CommandServices, Session
from kodev.signals import interrupts_as_keyboard, raise_if_stop_asked, shielded
from kodev.workloads import Workloads


class DevLoop:
    """The watch loop for `kodev watch` and `kodev run --watch`.

    `watch_paths` are the command-line paths of `kodev watch` (read again with kodev.toml when it
    changes); None for `kodev run --watch`, whose container settings come from flags.
    """

    def __init__(self, session: Session, commands: list[CommandServices], prefix_logs: bool,
                 watch_paths: list[str] | None = None, stack: ComposeStack | None = None, swap: bool = True,
                 debug: DebugSettings | None = None, kube: KubeStack | None = None) -> None:
        """`debug` (kodev debug): every service runs under Delve, on binaries built for it (swapping is on).
        `kube` (kodev watch -k): the objects to apply to a cluster, each rolled out when its images change."""
        self.session = session
        self.debug = debug
        swap = swap or debug is not None
        self.ui = session.ui
        self.stack = stack
        self.inbox = Inbox()
        containers = Containers(session.daemon.client, Owner.current())
        supervision = (Supervision(session.go, session.daemon.client, containers.owner,
                                   force_copy=session.settings.swap_copy) if swap else None)
        self.proxies = Proxies(self.ui)
        self.proxies.apply(_proxy_specs(commands), session.config.describe())
        self.kube = kube
        self.workloads = Workloads(containers, session.daemon, self.ui, self.inbox.put, stack, supervision,
                                   prefix_logs, debug, self.proxies, kube)
        self.workloads.use(commands)
        self.config_reload = ConfigReload(self.ui, watch_paths)
        self.stack_reload = StackReload(self.ui, stack) if stack is not None else None
        self.kube_reload = ManifestReload(self.ui, kube) if kube is not None else None
        module_cache = session.go.module_cache(session.config.root)  # never news, even inside the module
        self.watcher = FileWatcher(self.inbox, session.config.watch, session.config.root,
                                   (module_cache,) if module_cache is not None else ())
        self.health = DaemonHealth(session.daemon, self.ui)
        self.graph = GraphState(self.ui)
        self.others: list[Message] = []  # messages other than file changes, handled between rounds
        self.coalescer = Coalescer(self.inbox, self.others.append)

    def run(self) -> int:
        """Build, start, watch; on Ctrl-C or SIGTERM stop and remove this session's containers.

        Exits 0, or 1 when the containers could not be cleaned up (the next kodev removes them)."""
        # (ignore_cleanup_errors: a file still being written there must not turn a clean stop into exit 1)
        with interrupts_as_keyboard(), tempfile.TemporaryDirectory(prefix="watch-", dir=cache.subdir("tmp"),
                                                                   ignore_cleanup_errors=True) as tmp:
            self.scratch = Path(tmp)
            self.rounds = self._rounds(self.session)
            try:
                self.startup()
                while True:
                    self.step()
            except KeyboardInterrupt:
                self.ui.note("stopping…")
            finally:
                with shielded():
                    cleaned = self.shutdown()
        return 0 if cleaned else 1

    def _rounds(self, session: Session) -> Rebuild:
        return Rebuild(session.builder, session.pruner, session.daemon, self.ui, self.workloads.commands,
                       self.scratch, self.workloads.follow, strip=session.config.watch.strip, run_ref=session.run_ref,
                       superseded=self.coalescer.supersede, debug=self.debug is not None,
                       build_failed=self.proxies.build_failed, build_ok=self.proxies.build_ok,
                       direct=self._direct(session))

    def _direct(self, session: Session) -> DirectBuilds | None:
        """Main-only edits compiled and linked without go build, by what the graph says each command reads."""
        if not (session.config.watch.direct and session.settings.direct) or self.debug is not None:
            return None
        go, work = session.go, self.scratch / f"direct-{id(session)}"
        env_file, binary = go.env_file(session.cwd), Path(go.binary)
        return DirectBuilds(go, work, lambda c: command_sources(self.graph.good, c, env_file, binary),
                            lambda c, ready, reason: self.ui.direct_learned(self._name(c), ready, reason))

    def _name(self, command: MainPackage) -> str:
        return next((c.plan.name for c in self.workloads.commands if c.plan.command == command), command.app_name)

    # --- startup ---------------------------------------------------------------------------------

    def startup(self) -> None:
        reaped = self.workloads.containers.reap_orphans()
        if reaped:
            self.ui.info(f"removed containers left by a kodev that is gone: {', '.join(reaped)}")
        sweep_holds(self.session.daemon)  # replaced images a killed kodev held for pruning
        self.workloads.prepare()
        failure = self.graph.load(self.session.go, self._main_packages())
        if failure is not None:
            raise failure
        self._watch()  # before the first build, so that a save during it is not missed
        self.rounds.run({c.import_path for c in self.workloads.commands}, set())
        self.workloads.start_stack()  # up as a whole, once every kodev service has its image
        self.watcher.wait_ready()
        self.ui.watching(self.graph.good.roots)

    def _main_packages(self) -> list[MainPackage]:
        return [c.plan.command for c in self.workloads.commands]

    def _watch(self) -> None:
        """(Re)start the watcher when the directories to watch changed (kodev.toml and compose files too)."""
        self.watcher.follow(self.graph.good.roots, [self.session.config.path,
                                                    *(self.stack.project.files if self.stack else ()),
                                                    *(self.kube.sources if self.kube else ())])

    # --- the loop --------------------------------------------------------------------------------

    def step(self) -> None:
        """One turn: the next round's changes (or an idle timeout), the other messages, then the round."""
        raise_if_stop_asked()
        changes = self.coalescer.next_round()
        recover = False
        restart: set[str] = set()  # commands whose workload missed its swap: delivered again
        for message in self.others:
            with self.health.guard("follow a service's exit"):
                recover |= self._handle(message, restart)
        self.others.clear()
        if changes is None:
            with self.health.guard("check on the Docker daemon"):
                recover |= self.health.idle_check(self.workloads.vanished) in ("back", "vanished")
        elif not self.health.down:  # while it is down, the rebuild on its return covers them
            with self.health.guard("rebuild"):
                self.round(changes)
        if recover and not self.health.down:
            with self.health.guard("recover"):
                self._recover()
        elif restart and not self.health.down:
            with self.health.guard("start a service again"):
                self._run(set(), frozenset(restart))

    def _handle(self, message: Message, restart: set[str]) -> bool:
        """A message other than file changes; True when the workloads must be recovered. A workload that
        missed the binary swapped into it has its command added to `restart`."""
        if isinstance(message, WatchFailed):
            self.ui.warn(f"file watching stopped: {message.error}. Restart kodev to resume.")
        elif isinstance(message, ServiceExited):
            verdict = self.workloads.exited(message)
            if verdict == "daemon-lost":
                self.health.lost()
            elif verdict == "exited":
                self.health.soon()  # a daemon shutting down stops its containers first
            elif verdict == "missed" and (command := self.workloads.command_of(message.container_id)):
                restart.add(command)
            return verdict == "vanished"
        return False

    def round(self, raw: RawChanges) -> None:
        reloaded = self.config_reload.check(self.session, raw)
        if reloaded is not None:
            self._apply(reloaded)  # the new configuration, built and delivered
            return
        if self.stack_reload is not None and (running := self.stack_reload.check(self.session, raw)) is not None:
            self.workloads.adopt_compose(running)
        if self.kube_reload is not None:
            self.kube_reload.check([Path(p) for _, p in raw])
        changes = list(normalize(raw, self.graph.good))
        commands = self.workloads.commands
        decision = decide(changes, self.graph.good, {c.import_path: c.sources for c in commands})
        if decision.refresh_graph or self.graph.failed:  # a failed graph is tried again on any save
            recovering = self.graph.failed
            failure = self.graph.load(self.session.go, self._main_packages())
            if failure is not None:
                self.ui.changes(changes, self.session.config.root)
                self._keep_serving(failure)
                return
            decision = decision.merge(decide(changes, self.graph.good, {}))
            self._watch()
            if recovering:  # whatever failed meanwhile (a reload, a dependency bump) is built now
                decision = decision.merge(Decision(frozenset(c.import_path for c in commands), frozenset(), False))
        if decision.rebuild or decision.reimage or self.rounds.carried:  # (what a superseded round left)
            affected = decision.rebuild | decision.reimage
            self.ui.changes(changes, self.session.config.root, [c.plan.name for c in commands
                                                                  if c.import_path in affected])
            self._run(set(decision.rebuild), decision.reimage, supersedable=True)

    def _apply(self, reloaded: Reloaded) -> None:
        """The new kodev.toml is built while the old workloads serve; each new delivery took over the container
        of its service and its first release replaces it. Services no longer named are stopped."""
        try:
            self.proxies.apply(_proxy_specs(reloaded.commands), reloaded.session.config.describe())
        except KodevError as exc:  # a port taken meanwhile: the rest of the new configuration still applies
            self.ui.error(exc)
        self.workloads.stop(self.workloads.use(reloaded.commands))
        self.session = reloaded.session
        self.rounds.close()
        self.rounds = self._rounds(reloaded.session)
        if reloaded.session.config.watch != self.watcher.settings:  # new watch settings: a new watcher now
            self.watcher.stop()
            self.watcher = FileWatcher(self.inbox, reloaded.session.config.watch, reloaded.session.config.root,
                                       self.watcher.excluded)
            self._watch()
        failure = self.graph.load(self.session.go, self._main_packages())
        if failure is not None:
            self._keep_serving(failure)
            return
        self._watch()
        self._run({c.import_path for c in self.workloads.commands})

    def _keep_serving(self, failure: KodevError) -> None:
        self.ui.error(failure)
        self.ui.warn(f"{self.rounds.what_stays()}; kodev tries again on your next save.")

    def _run(self, compile_these: set[str], reimage_these: frozenset[str] = frozenset(),
             supersedable: bool = False) -> None:
        """A round; `supersedable` (one started by saves): newer saves may give its compile up."""
        try:
            self.rounds.run(compile_these, set(reimage_these), supersedable)
        except DaemonLost:
            self.health.lost()

    def _recover(self) -> None:
        """After the daemon restarted, or containers vanished: publish every image again, recreate all."""
        self.workloads.forget_builds()
        failure = self.graph.load(self.session.go, self._main_packages())  # files may have been added meanwhile
        if failure is not None:
            self.ui.error(failure)
            return
        self._run({c.import_path for c in self.workloads.commands})

    # --- shutdown --------------------------------------------------------------------------------

    def shutdown(self) -> bool:
        """Stop watching, stop and remove this session's containers (stop the compose project). False if
        some could not be cleaned up."""
        self.watcher.stop()
        self.rounds.close()
        cleaned = self.workloads.shutdown()
        self.proxies.close()
        if self.kube is not None:
            try:
                done = self.kube.shutdown()
            except KodevError as exc:
                self.ui.error(exc)
                return False
            if done:
                self.ui.info(done)
        if self.stack is not None:
            try:
                done = self.stack.shutdown()
            except KodevError as exc:
                self.ui.error(exc)
                return False
            if done:
                self.ui.info(done)
        return cleaned


def _proxy_specs(commands: list[CommandServices]) -> dict[str, ProxySpec]:
    """The dev proxies these commands' services want, by service."""
    return {spec.service: spec.proxy for c in commands for spec in c.specs if spec.proxy is not None}
