"""What every kodev command starts from: config, Go toolchain, daemon, target platform and a Builder."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kodev import config as config_stage
from kodev import platform as platforms
from kodev.builder import Builder, BuiltImage
from kodev.config import Config, ServiceConfig, key_path
from kodev.daemon import Daemon, connect
from kodev.errors import ConfigError, GoError
from kodev.gomod import resolve_commands, selects
from kodev.gotool import GoTool, find_go
from kodev.image.resolve import Bases
from kodev.plan import CommandPlan, plan_commands
from kodev.platform import Platform
from kodev.publish import ImagePruner, NoPruning, Publisher
from kodev.publish.daemon import DaemonPublisher
from kodev.publish.multi import MultiPublisher
from kodev.publish.pruning import PruningPublisher
from kodev.publish.tarball import TarballPublisher
from kodev.settings import EnvSettings
from kodev.ui import UI

if TYPE_CHECKING:
    from kodev.compose.project import ComposeProject
    from kodev.publish.registry import PushSettings
    from kodev.services import ContainerSpec


@dataclass(frozen=True)
class CommandServices:
    """A command `kodev watch` keeps fresh, and the services that run its image (none: image only)."""

    plan: CommandPlan
    specs: tuple[ContainerSpec, ...] = ()
    compose: tuple[str, ...] = ()  # compose services that run its image (kodev watch -f)


@dataclass(frozen=True)
class Session:
    """What one kodev invocation works with. A changed kodev.toml gives a new Session (`with_config`).

    `publisher` is where images go; `pruner` removes the images publishes replaced, at the moment the loop
    chooses (usually the same object: the publisher that notes what it replaced). A session built without
    one (a test's, one that never publishes) prunes nothing."""

    cwd: Path
    ui: UI
    config: Config
    go: GoTool
    daemon: Daemon
    platform: Platform
    publisher: Publisher
    builder: Builder
    pull: bool = False
    pruner: ImagePruner = field(default_factory=NoPruning)
    settings: EnvSettings = field(default_factory=lambda: EnvSettings.from_env(os.environ))
    run_tag: str | None = None  # the tag containers run from (kodev watch), besides `latest`

    def run_ref(self, plan: CommandPlan) -> str:
        """The reference a container of `plan`'s image is created from."""
        return f"{plan.repository}:{self.run_tag}" if self.run_tag else plan.ref

    @classmethod
    @contextmanager
    def open(cls, config_path: Path | None, go_override: str | None, platform_flag: str | None,
             ui: UI | None = None, pull: bool = False, tarball: Path | None = None,
             settings: EnvSettings | None = None, run_tag: str | None = None,
             push: PushSettings | None = None) -> Iterator[Session]:
        """Read the config, find Go, connect to the daemon. With `tarball`, images also go into that
        archive (written when the session closes). `settings`: kodev's environment variables as the CLI
        read them (default: read now). `run_tag` (the watch loop's): images are also tagged so, and the
        containers run from that tag (`Session.run_ref`). With `push`, images go to that registry instead
        of the daemon (which still serves base images)."""
        settings = settings or EnvSettings.from_env(os.environ)
        ui = ui or UI(debug=settings.debug)
        cwd = Path.cwd()
        config = config_stage.load(config_path, cwd)
        for warning in config.warnings:
            ui.warn(warning)
        chosen = _chosen_platform(config, platform_flag)  # a bad one is reported before Go or Docker is asked
        go = find_go(go_override, {})
        daemon = connect()
        try:
            target = chosen or daemon.platform()
            go = dataclasses.replace(go, env={**go.env, **target.go_env()})
            publisher, pruner = _destinations(daemon, run_tag, tarball, push, ui)
            builder = _builder(config, go, daemon, target, publisher, ui, pull, settings)
            session = cls(cwd=cwd, ui=ui, config=config, go=go, daemon=daemon, platform=target,
                          publisher=publisher, builder=builder, pull=pull, pruner=pruner, settings=settings,
                          run_tag=run_tag)
            yield session
            publisher.close()  # deferred work: the archive written, replaced images removed
        finally:
            daemon.client.close()

    def with_config(self, config: Config) -> Session:
        """The same session on a changed kodev.toml; base images are resolved again (they may have changed)."""
        builder = _builder(config, self.go, self.daemon, self.platform, self.publisher, self.ui, self.pull,
                           self.settings)
        return dataclasses.replace(self, config=config, builder=builder)

    def reload(self, watch_paths: Sequence[str]) -> tuple[Session, list[CommandServices]] | None:
        """kodev.toml changed on disk: the session and commands it now describes (None: same config).

        Raises KodevError for a broken file; this session stays as it is either way."""
        assert self.config.path is not None
        config = config_stage.load(self.config.path, self.cwd)
        if config == self.config:
            return None
        fresh = self.with_config(config)
        return fresh, fresh.watch_targets(watch_paths)

    def plan(self, paths: Sequence[str], origins: Mapping[str, str] | None = None) -> list[CommandPlan]:
        """The commands `paths` name, planned. `origins` names the config key a path came from, for errors."""
        commands = resolve_commands(self.go, paths, self.cwd, origins)
        return plan_commands(self.config, commands, self.builder.git(commands))

    def build(self, plans: Sequence[CommandPlan]) -> list[BuiltImage]:
        return self.builder.build(plans)

    def build_paths(self, paths: Sequence[str]) -> list[BuiltImage]:
        return self.build(self.plan(paths))

    def compose_targets(self, project: ComposeProject) -> list[CommandServices]:
        """What `kodev watch -f` keeps fresh: each kodev service's command, with the services that run it."""
        from kodev.compose_build import command_plans  # Compose's modules (and yaml) for compose projects only

        by_plan: dict[CommandPlan, list[str]] = {}
        for service, plan in command_plans(self, project).items():
            by_plan.setdefault(plan, []).append(service)
        return [CommandServices(plan, compose=tuple(services)) for plan, services in by_plan.items()]

    def watch_targets(self, paths: Sequence[str], args: tuple[str, ...] = ()) -> list[CommandServices]:
        """What `kodev watch` runs: services and commands from kodev.toml, or the commands given.

        Given paths narrow the config to those commands; a pattern (`./...`, `./cmd/...`) means every
        `package main` it matches. A command with no service is run as a service named after it (with `args`)
        when it came from the command line, and only rebuilt and loaded when it came from `[commands]` (so images
        used by compose or other tools stay fresh). A path from kodev.toml that names no command is an error
        naming its key.
        """
        from kodev.services import container_spec

        where = self.config.describe()
        specs: list[tuple[ContainerSpec, str]] = []
        origins: dict[str, str] = {}  # a path from the config -> its key, for errors
        for name, service in self.config.services.items():
            key = f"{where}: {key_path('services', name, 'command')}"
            specs.append((container_spec(service, self.config.root, f"{where}: services.{name}"),
                          self.config.command_path(service.command)))
            origins.setdefault(specs[-1][1], f"{key}: {service.command}")
        for command in self.config.commands:
            origins.setdefault(self.config.command_path(command), f"{where}: {key_path('commands', command)}")
        from_config = [*(path for _, path in specs), *(self.config.command_path(key) for key in self.config.commands)]
        if not paths and not from_config and not _in_go_module(self.cwd):
            raise ConfigError(f"no go.mod in {self.cwd} or any directory above it: kodev watch works inside a Go "
                              "module. Run it from your module's directory (where go.mod is), or name a command: "
                              "kodev watch ./cmd/server.")
        if not paths and not from_config:
            raise ConfigError(f"nothing to watch: {where} has no [services] or [commands]. Name a command "
                              "(kodev watch ./cmd/server) or add a [services.NAME] table to kodev.toml.")
        every = [*from_config, *paths]
        plans = self.plan(every, origins)
        named = dict(zip(every, self._resolve_each(every, plans, origins), strict=True))
        selected = {p.command.import_path for arg in (paths or from_config) for p in named[arg]}
        services: dict[str, tuple[CommandPlan, list[ContainerSpec]]] = {
            p.command.import_path: (p, []) for p in plans if p.command.import_path in selected}
        for spec, path in specs:
            if len(named[path]) != 1:
                raise ConfigError(f"{origins[path]}: names {len(named[path])} commands "
                                  f"({', '.join(p.name for p in named[path])}); a service runs one. Give the "
                                  "directory of one `package main`, e.g. ./cmd/server.")
            found = services.get(named[path][0].command.import_path)
            if found is not None:
                found[1].append(spec)
        for arg in paths:
            for each in named[arg]:
                plan, runs = services[each.command.import_path]
                if not runs:  # named on the command line: run it, as `kodev run` would
                    directory = plan.command.dir  # a pattern's match is named by its directory
                    here = f"./{directory.relative_to(self.cwd)}" if directory.is_relative_to(self.cwd) else None
                    command = (here or str(directory)) if "..." in arg else arg
                    service = ServiceConfig(name=plan.container_name, command=command, args=args)
                    runs.append(container_spec(service, self.cwd, f"command {command}"))
        return [CommandServices(plan, tuple(runs)) for plan, runs in services.values()]

    def _resolve_each(self, args: Sequence[str], plans: Sequence[CommandPlan],
                      origins: Mapping[str, str]) -> list[list[CommandPlan]]:
        """The plans each argument names: one for a directory or import path, every match for a pattern."""
        result = []
        for arg in args:
            matched = [p for p in plans if selects(arg, p.command, self.cwd)]
            if not matched:
                where = origins.get(arg, arg)
                kind = "pattern" if "..." in arg else "path"
                raise (ConfigError if arg in origins else GoError)(
                    f"{where}: this {kind} matches no `package main` (only library packages, or none, are "
                    "there). Name a command directory (./cmd/server), its import path, or a pattern that "
                    "holds commands (./cmd/...).")
            result.append(matched)
        return result


def _chosen_platform(config: Config, flag: str | None) -> Platform | None:
    """--platform, else the config's `platform`, else None (the daemon's is used)."""
    if flag:
        return platforms.parse(flag, "--platform")
    if config.platform:
        return platforms.parse(config.platform, f"{config.describe()}: platform")
    return None


def _destinations(daemon: Daemon, run_tag: str | None, tarball: Path | None, push: PushSettings | None,
                  ui: UI) -> tuple[Publisher, ImagePruner]:
    """Where images go: the daemon (pruning what it replaced), or a registry; and a tarball besides. A watch
    (`run_tag`) with `push` sends to both, the daemon first: a registry that fails is said, and the
    containers still get the build."""
    others: list[Publisher] = [TarballPublisher(tarball)] if tarball else []
    if push is not None:
        from kodev.publish.registry import RegistryPublisher

        registry: Publisher = RegistryPublisher(push)
        if push.out is not None and push.manifests_root is not None:
            from kodev.publish.manifest_out import ManifestOutput

            registry = ManifestOutput(registry, push.manifests, push.manifests_root, push.out)
        if run_tag is None:
            return (MultiPublisher(registry, *others) if others else registry), NoPruning()
        others.append(registry)
    into_daemon = DaemonPublisher(daemon, run_tag)
    pruning = PruningPublisher(MultiPublisher(into_daemon, *others, on_failure=ui.error if push else None)
                               if others else into_daemon, daemon)
    return pruning, pruning


def _builder(config: Config, go: GoTool, daemon: Daemon, target: Platform, publisher: Publisher, ui: UI,
             pull: bool, settings: EnvSettings) -> Builder:
    bases = Bases(daemon, target, pull, config.root, ui.info)
    return Builder(config, go, target, bases, publisher, ui, settings.epochs, settings.cache.layer_budget)


def _in_go_module(directory: Path) -> bool:
    return any((d / "go.mod").is_file() or (d / "go.work").is_file() for d in (directory, *directory.parents))
