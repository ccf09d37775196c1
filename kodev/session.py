"""What every kodev command starts from: config, Go toolchain, daemon, target platform and a Builder."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kodev import config as config_stage
from kodev import platform as platforms
from kodev.builder import Builder, BuiltImage, CommandPlan, plan_commands
from kodev.config import Config
from kodev.daemon import Daemon, connect
from kodev.gomod import resolve_commands
from kodev.gotool import GoTool, find_go
from kodev.platform import Platform
from kodev.ui import UI


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
             debug: bool = False, ui: UI | None = None) -> Iterator[Session]:
        ui = ui or UI(debug=debug)
        cwd = Path.cwd()
        config = config_stage.load(config_path, cwd)
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
            builder = Builder(config, go, daemon, target, ui)
            yield cls(cwd=cwd, ui=ui, config=config, go=go, daemon=daemon, platform=target, builder=builder)
        finally:
            daemon.client.close()

    def plan(self, paths: Sequence[str]) -> list[CommandPlan]:
        commands = resolve_commands(self.go, paths, self.cwd)
        return plan_commands(self.config, commands, self.builder.git(commands))

    def build_paths(self, paths: Sequence[str]) -> list[BuiltImage]:
        return self.builder.build(self.plan(paths))
