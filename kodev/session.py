"""What every kodev command starts from: config, Go toolchain, daemon, target platform and a Builder."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kodev import config as config_stage
from kodev import platform as platforms
from kodev.builder import Builder, BuiltImage, CommandPlan, plan_commands
from kodev.config import Config, ServiceConfig
from kodev.daemon import Daemon, connect
from kodev.errors import ConfigError
from kodev.gomod import resolve_commands
from kodev.gotool import GoTool, find_go
from kodev.platform import Platform
from kodev.ui import UI

if TYPE_CHECKING:
    from kodev.image.layers import Layer
    from kodev.services import ContainerSpec


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


@dataclass
class Session:
    cwd: Path
    ui: UI
    config: Config
    go: GoTool
    daemon: Daemon
    platform: Platform
    builder: Builder

    @classmethod
    @contextmanager
    def open(cls, config_path: Path | None, go_override: str | None, platform_flag: str | None,
             debug: bool = False, ui: UI | None = None, pull: bool = False) -> Iterator[Session]:
        ui = ui or UI(debug=debug)
        cwd = Path.cwd()
        config = config_stage.load(config_path, cwd)
        for warning in config.warnings:
            ui.warn(warning)
        if platform_flag:
            platforms.parse(platform_flag, "--platform")
        elif config.platform:
            platforms.parse(config.platform, f"{config.describe()}: platform")
        go = find_go(go_override, {})
        daemon = connect()
        try:
            if platform_flag:
                target = platforms.parse(platform_flag, "--platform")
            elif config.platform:
                target = platforms.parse(config.platform, f"{config.describe()}: platform")
            else:
                target = daemon.platform()
            go = dataclasses.replace(go, env={**go.env, **target.go_env()})
            builder = Builder(config, go, daemon, target, ui, pull=pull)
            yield cls(cwd=cwd, ui=ui, config=config, go=go, daemon=daemon, platform=target, builder=builder)
        finally:
            daemon.client.close()

    def plan(self, paths: Sequence[str]) -> list[CommandPlan]:
        commands = resolve_commands(self.go, paths, self.cwd)
        return plan_commands(self.config, commands, self.builder.git(commands))

    def build_paths(self, paths: Sequence[str]) -> list[BuiltImage]:
        return self.builder.build(self.plan(paths))

    def _config_path(self, path: str) -> str:
        """A command path from kodev.toml: relative to the file's directory, not to where kodev runs."""
        target = path.removeprefix("ko://")
        return str((self.config.root / target).resolve()) if target.startswith(".") else target

    def watch_targets(self, paths: Sequence[str]) -> list[Target]:
        """What `kodev watch` runs: services and commands from kodev.toml, or the commands given.

        Given paths narrow the config to those commands; a command with no service is run as a service
        named after it when it came from the command line, and only rebuilt and loaded when it came from
        `[commands]` (so images used by compose or other tools stay fresh).
        """
        from kodev.services import container_spec

        where = self.config.describe()
        specs = [(container_spec(service, self.config.root, f"{where}: services.{name}"),
                  self._config_path(service.command)) for name, service in self.config.services.items()]
        from_config = [*(path for _, path in specs), *(self._config_path(key) for key in self.config.commands)]
        if not paths and not from_config:
            raise ConfigError(f"nothing to watch: {where} has no [services] or [commands]. Name a command "
                              "(kodev watch ./cmd/server) or add a [services.NAME] table to kodev.toml.")
        every = [*from_config, *paths]
        plans = self.plan(every)
        plan_of = dict(zip(every, self._resolve_each(every, plans), strict=True))
        selected = {plan_of[p].command.import_path for p in (paths or from_config)}
        targets = {p.command.import_path: Target(plan=p, specs=[]) for p in plans
                   if p.command.import_path in selected}
        for spec, path in specs:
            target = targets.get(plan_of[path].command.import_path)
            if target is not None:
                target.specs.append(spec)
        for arg in paths:
            target = targets[plan_of[arg].command.import_path]
            if not target.specs:  # named on the command line: run it, as `kodev run` would
                service = ServiceConfig(name=target.plan.name, command=arg)
                target.specs.append(container_spec(service, self.cwd, f"command {arg}"))
        return list(targets.values())

    def _resolve_each(self, args: Sequence[str], plans: Sequence[CommandPlan]) -> list[CommandPlan]:
        """The plan each argument names (local directories by path, others by import path)."""
        result = []
        for arg in args:
            target = arg.removeprefix("ko://")
            local = (self.cwd / target).resolve() if target.startswith((".", "/")) else None
            match = next((p for p in plans if (p.command.dir == local if local else p.command.import_path == target)),
                         None)
            if match is None:
                raise ConfigError(f"{arg}: not a single command (kodev watch takes command directories or "
                                  "import paths, not patterns).")
            result.append(match)
        return result
