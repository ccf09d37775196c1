"""What the watch loop runs: its commands, the deliveries of their images, and the containers behind them.

`Workloads` owns them for the loop: which commands (each with its last good build, rebuild.py), the logs
it follows (a `LogFollower` per container, its lines prefixed per service), what a container's exit means,
and stopping everything at the end. It says what happened (`ExitVerdict`); the loop decides what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from kodev.containers import Containers
from kodev.daemon import Daemon
from kodev.debug.delve import DebugSettings
from kodev.deliver import Delivered, Delivery
from kodev.deliver.choose import deliveries_for
from kodev.deliver.compose import ComposeDelivery, ComposeStack
from kodev.deliver.debugged import debug_targets
from kodev.deliver.proxied import ProxiedDelivery, unwrapped
from kodev.deliver.supervision import Supervision
from kodev.errors import KodevError, reworded
from kodev.events import Message, ServiceExited
from kodev.kube.rollout import RolloutError
from kodev.kube.stack import KubeStack
from kodev.logs import LogFollower
from kodev.proxy.runner import Proxies
from kodev.rebuild import WatchedCommand
from kodev.session import CommandServices
from kodev.ui import SERVICE_COLORS, UI

# What a container's exit means: nothing new ('ignored': one kodev replaced), 'exited' (it stopped: the next
# release starts it), 'missed' (it stopped before the binary swapped into it could run: start it again now),
# 'vanished' (its container is gone: recreate), 'daemon-lost' (the daemon went with it).
ExitVerdict = Literal["ignored", "exited", "missed", "vanished", "daemon-lost"]

log = logging.getLogger(__name__)


class Workloads:
    """The commands of one watch session and everything that runs their images."""

    def __init__(self, containers: Containers, daemon: Daemon, ui: UI, post: Callable[[Message], None],
                 stack: ComposeStack | None, supervision: Supervision | None, prefix_logs: bool,
                 debug: DebugSettings | None = None, proxies: Proxies | None = None,
                 kube: KubeStack | None = None) -> None:
        self.containers = containers
        self.daemon = daemon
        self.ui = ui
        self.post = post  # the loop's inbox: exits arrive there, from the log threads
        self.stack = stack
        self.supervision = supervision
        self.prefix_logs = prefix_logs
        self.debug = debug  # kodev debug: every restarted service runs under Delve
        self.proxies = proxies  # the dev proxies: their services' deliveries hold requests while delivering
        self.kube = kube  # kodev watch -k: the objects applied to a cluster
        self.commands: list[WatchedCommand] = []
        self.colors: dict[str, str] = {}
        self.width = 0

    @property
    def deliveries(self) -> list[Delivery]:
        return [d for c in self.commands for d in c.deliveries]

    def use(self, commands: Sequence[CommandServices]) -> list[Delivery]:
        """Run these commands from now on. A command or service that ran before takes over its last build and
        its container (which serves until the next release replaces it); the deliveries nothing took over
        are returned, for `stop`."""
        previous = {c.import_path: c for c in self.commands}
        left = self.deliveries
        targets = debug_targets([s for c in commands for s in c.specs if s.restart]) if self.debug else None
        self.commands = [WatchedCommand(c.plan, [self._proxied(d) for d in deliveries_for(
            c.specs, c.compose, self.containers, self.stack, self.supervision, c.plan.command.app_name, self.debug,
            targets, self.kube, c.plan.command.import_path)]) for c in commands]
        for command in self.commands:
            if command.import_path in previous:
                command.take_over(previous[command.import_path])
            for delivery in command.deliveries:
                taken = next((old for old in left if delivery.take_over(unwrapped(old))), None)
                if taken is not None:
                    left.remove(taken)
        services = [d.service for d in self.deliveries if d.service]
        if self.stack is not None:  # the project's other services log too
            services += [s.name for s in self.stack.project.services if s.name not in services]
        self.colors = {name: SERVICE_COLORS[i % len(SERVICE_COLORS)] for i, name in enumerate(services)}
        self.width = max((len(n) for n in services), default=0)
        self.ui.align([c.plan.name for c in self.commands])
        return left

    def _proxied(self, delivery: Delivery) -> Delivery:
        gate = self.proxies.gate(delivery.service) if self.proxies and delivery.service else None
        return ProxiedDelivery(delivery, gate) if gate is not None else delivery

    def prepare(self) -> None:
        for delivery in self.deliveries:
            delivery.prepare()  # e.g. a container name taken by someone else fails before any build

    # --- logs and exits --------------------------------------------------------------------------------

    def follow(self, delivered: Delivered) -> None:
        """Follow the logs of a new container until it exits (then its exit comes to the loop)."""
        if delivered.container_id:
            try:
                client = self.daemon.open_client()  # two streams held for the container's life
            except Exception:  # the daemon is going: the shared client's streams end, and the exit says so
                client = self.daemon.client
            LogFollower(client, delivered.service, delivered.container_id, self._line, self._exited,
                        close_client=client is not self.daemon.client).start()

    def _line(self, service: str, stream: str, line: str) -> None:
        if self.prefix_logs:
            self.ui.service_line(service, self.colors.get(service, "white"), self.width, line, stream)
        else:
            self.ui.raw(stream, line, service)

    def _exited(self, service: str, container_id: str, code: int | None, lines: list[str]) -> None:
        self.post(ServiceExited(service, container_id, code, tuple(lines)))

    def exited(self, exited: ServiceExited) -> ExitVerdict:
        """What a container's end means; an exit of a current container is reported and marks it down."""
        delivery = next((d for d in self.deliveries if d.owns(exited.container_id)), None)
        if delivery is None:
            return "ignored"  # a container we replaced or removed ourselves
        code = exited.code
        if code is None:  # its log stream broke without an exit code: is the daemon still there?
            if not self.daemon.reachable():
                return "daemon-lost"
            code = self.containers.exit_code(exited.container_id)
            if code is None and not self.containers.exists(exited.container_id):
                self.ui.warn(f"the container of {exited.service} is gone; recreating it")
                return "vanished"
            if code is None:
                return "ignored"
        ended = self.containers.ended(exited.container_id)
        if ended is None and exited.code is not None:
            return "ignored"  # running again: a replacement that was undone (its new image never arrived)
        delivery.lost()
        if ended is not None and delivery.missed(ended.at):
            return "missed"
        self.ui.service_exited(exited.service, code, exited.last_lines)
        return "exited"

    def command_of(self, container_id: str) -> str | None:
        """The import path of the command whose workload runs (or ran) in `container_id`."""
        return next((c.import_path for c in self.commands if any(d.owns(container_id) for d in c.deliveries)),
                    None)

    def vanished(self) -> list[str]:
        """Services whose container is gone (removed behind kodev's back, or the daemon restarted)."""
        import docker.errors

        followed = [(d.service or "", d.container()) for d in self.deliveries]
        try:
            there = self.containers.existing([c for _, c in followed if c])
        except (OSError, docker.errors.APIError) as exc:
            # A daemon shutting down still answers pings for a moment: the next check says whether it is gone.
            log.debug("listing containers failed: %s", exc)
            return []
        return [service for service, container in followed if container and container not in there]

    def adopt_compose(self, running: dict[str, str]) -> None:
        """Compose (re)made the project's containers: kodev's services adopt theirs; new ones are followed."""
        following = {d.container() for d in self.deliveries}
        composed = {d.service: d for d in self.deliveries if isinstance(d, ComposeDelivery)}
        for service, container_id in running.items():
            if service in composed:
                composed[service].adopt(container_id)
            if container_id not in following:
                self.follow(Delivered(service, "started", 0.0, container_id))

    def start_stack(self) -> None:
        """Bring the compose project up as a whole (when there is one) and adopt its containers; apply the
        Kubernetes objects (kodev watch -k)."""
        if self.kube is not None:
            try:
                self.kube.start(self._line, self.ui)
            except RolloutError as exc:  # applied, not rolled out: the user fixes it and saves
                self.ui.error(exc)
        if self.stack is None:
            return
        started = time.monotonic()
        running = self.stack.start()
        self.ui.info(f"compose project {self.stack.project.name} is up ({time.monotonic() - started:.2f}s): "
                     f"{', '.join(sorted(running)) or 'no containers'}")
        self.adopt_compose(running)

    def forget_builds(self) -> None:
        """After the daemon restarted: every image is sent again and every workload recreated."""
        for command in self.commands:
            command.forget_image()
            for delivery in command.deliveries:
                delivery.lost()

    # --- stopping ----------------------------------------------------------------------------------------

    def stop(self, deliveries: Sequence[Delivery]) -> None:
        """Stop the workloads of services a reloaded kodev.toml no longer names (Compose's stay Compose's)."""
        for delivery in deliveries:
            container = delivery.container()
            delivery.close()
            if container is not None and delivery.service is not None and not isinstance(delivery, ComposeDelivery):
                self.containers.remove(container, delivery.stop_timeout)

    def shutdown(self) -> bool:
        """Stop and remove every container of this session; False if some could not be (the next kodev will)."""
        for delivery in self.deliveries:
            delivery.close()
        timeouts = {d.service: d.stop_timeout for d in self.deliveries if d.service}
        try:
            removed = self.containers.cleanup(timeouts)
        except KodevError as exc:
            left = [d.service or "" for d in self.deliveries if d.container()]
            self.ui.error(reworded(exc, f"{exc}. Left behind: {', '.join(left) or 'nothing kodev knows of'}; the "
                                        "next kodev removes them (they are labelled with this kodev, which is gone "
                                        "then)."))
            return False
        if removed:
            self.ui.info(f"removed {', '.join(removed)}")
        return True
