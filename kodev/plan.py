"""Stage 'plan': everything decided about each command before anything is built — its settings (kodev.toml's
tables and [build], ko semantics), base, image name and `go build` request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev.config import CommandConfig, Config
from kodev.errors import ConfigError
from kodev.gobuild import BuildRequest
from kodev.gomod import MainPackage
from kodev.templates import GitInfo, TemplateContext, expand


@dataclass(frozen=True)
class CommandPlan:
    """Everything decided about one command before anything is built."""

    command: MainPackage
    request: BuildRequest
    base: str
    base_where: str
    repository: str  # e.g. kodev.local/server

    @property
    def ref(self) -> str:
        return f"{self.repository}:latest"

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    @property
    def container_name(self) -> str:
        """The default container name: the command's name, made one Docker accepts (`a` -> `kodev-a`)."""
        from kodev.config import CONTAINER_NAME

        return self.name if CONTAINER_NAME.match(self.name) else f"kodev-{self.name}"


def _command_config(config: Config, command: MainPackage) -> tuple[str, CommandConfig] | None:
    """The settings for `command`: every table naming it (by path or import path), later keys winning."""
    found: list[tuple[str, CommandConfig]] = []
    for key, table in config.commands.items():
        target = config.command_path(key)
        if target == command.import_path or Path(target) == command.dir:
            found.append((key, table))
    if not found:
        return None
    key, merged = found[0]
    for _, table in found[1:]:
        merged = CommandConfig(path=merged.path, base=table.base or merged.base, image=table.image or merged.image,
                               build=table.build.over(merged.build))
    return key, merged


def plan_commands(config: Config, commands: Sequence[MainPackage], git: Mapping[Path, GitInfo | None]
                  ) -> list[CommandPlan]:
    """Settings, base and image name of each command; two commands with one image name is an error."""
    plans: list[CommandPlan] = []
    by_repository: dict[str, CommandPlan] = {}
    where_file = config.describe()
    for command in commands:
        found = _command_config(config, command)
        key, table = found if found else (None, CommandConfig(path=command.import_path))
        prefix = f'{where_file}: commands."{key}"' if key else where_file
        settings = table.build.over(config.build)
        context = TemplateContext.current(command.module_dir, git.get(command.module_dir))

        def where(setting: str, own: tuple[str, ...] | None, key: str | None = key) -> str:
            """The key a setting came from: the command's own table, or [build]."""
            return f'{where_file}: commands."{key}".{setting}' if own is not None else f"{where_file}: build.{setting}"

        request = BuildRequest(
            command=command,
            env=settings.env or (),
            flags=tuple(expand(f, context, where("flags", table.build.flags)) for f in settings.flags or ()),
            ldflags=tuple(expand(f, context, where("ldflags", table.build.ldflags)) for f in settings.ldflags or ()),
        )
        name = table.image or command.app_name
        repository = name if "/" in name else f"{config.repo}/{name}"
        plan = CommandPlan(command=command, request=request, base=table.base or config.base,
                           base_where=f"{prefix}.base" if table.base else f"{where_file}: base",
                           repository=repository)
        clash = by_repository.get(repository)
        if clash is not None and clash.command != command:
            raise ConfigError(
                f"{clash.command.import_path} and {command.import_path} would both be tagged "
                f"{repository}. Give one of them its own name in {config.path or 'kodev.toml'}, e.g. "
                f'[commands."{command.import_path}"] image = "{command.app_name}-2".')
        by_repository[repository] = plan
        if plan not in plans:
            plans.append(plan)
    return plans
