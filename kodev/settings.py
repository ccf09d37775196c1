"""What a configuration says, as typed values, and where its files are found.

Shared by both readers — `config` (kodev.toml) and `koyaml` (ko's .ko.yaml) — so that neither needs the
other's module: `config` picks the reader, `koyaml` builds these values, and there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_NAME = "kodev.toml"
DEFAULT_BASE = "static"
DEFAULT_REPO = "kodev.local"


@dataclass(frozen=True)
class BuildSettings:
    """`go build` settings. For a command, a set value replaces the default (ko's semantics), never merges."""

    env: tuple[str, ...] | None = None
    flags: tuple[str, ...] | None = None
    ldflags: tuple[str, ...] | None = None

    def over(self, defaults: BuildSettings) -> BuildSettings:
        return BuildSettings(
            env=self.env if self.env is not None else defaults.env,
            flags=self.flags if self.flags is not None else defaults.flags,
            ldflags=self.ldflags if self.ldflags is not None else defaults.ldflags,
        )


@dataclass(frozen=True)
class CommandConfig:
    """A `[commands."./cmd/x"]` table. `path` is the key as written, relative to the config's directory."""

    path: str
    base: str | None = None
    image: str | None = None
    build: BuildSettings = BuildSettings()


@dataclass(frozen=True)
class ServiceConfig:
    """A `[services.NAME]` table: a container that runs one command's image."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    env_file: str | None = None
    ports: tuple[str, ...] = ()
    network: str | None = None
    volumes: tuple[str, ...] = ()
    user: str | None = None
    stop_timeout: int = 10
    restart: bool = True
    swap: bool = True  # watch: binary-only changes are swapped into the running container


@dataclass(frozen=True)
class WatchSettings:
    """`[watch]`: how file events are collected."""

    poll: bool = False
    poll_interval_ms: int = 300
    debounce_ms: int = 25
    strip: bool = True  # link without DWARF and symbol table (-s -w) while watching: faster links
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything kodev.toml says. `root` is the directory relative paths in it are resolved against."""

    root: Path
    path: Path | None = None
    base: str = DEFAULT_BASE
    repo: str = DEFAULT_REPO
    platform: str | None = None
    build: BuildSettings = BuildSettings()
    commands: Mapping[str, CommandConfig] = field(default_factory=dict)
    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    watch: WatchSettings = WatchSettings()
    compose: tuple[str, ...] = ()  # compose files `kodev watch` runs (relative to `root`), as with -f
    warnings: tuple[str, ...] = ()  # things the file says that kodev ignores (e.g. unsupported .ko.yaml keys)

    def describe(self) -> str:
        return str(self.path) if self.path else "the built-in defaults"


def find(start: Path, name: str = CONFIG_NAME) -> Path | None:
    """The file `name` in `start` or the nearest parent, stopping at the module root (go.mod) or repo root."""
    for directory in (start, *start.parents):
        candidate = directory / name
        if candidate.is_file():
            return candidate
        if (directory / "go.mod").exists() or (directory / ".git").exists():
            return None
    return None
