"""What a configuration says, as typed values, and where its files are found.

Shared by both readers — `config` (kodev.toml) and `koyaml` (ko's .ko.yaml) — so that neither needs the
other's module: `config` picks the reader, `koyaml` builds these values, and there is no import cycle.
`EnvSettings` is what kodev's own environment variables say, read once by the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kodev.cache import CacheSettings
from kodev.epoch import Epochs
from kodev.gomod import KO_SCHEME
from kodev.proxy.spec import ProxySpec

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
    delve: int | None = None  # kodev debug: the port Delve listens on (default: 2345 and up, in order)
    proxy: ProxySpec | None = None  # watch: the dev proxy in front of it (kodev/proxy/)


@dataclass(frozen=True)
class WatchSettings:
    """`[watch]`: how file events are collected."""

    poll: bool = False
    poll_interval_ms: int = 300
    debounce_ms: int = 25
    strip: bool = True  # link without DWARF and symbol table (-s -w) while watching: faster links
    direct: bool = True  # a main-only edit compiled and linked without go build (kodev/directbuild.py)
    ignore: tuple[str, ...] = ()


DEFAULT_ROLLOUT_TIMEOUT = 180  # seconds a rollout of kodev watch -k may take before it is said to have failed


@dataclass(frozen=True)
class KubernetesConfig:
    """kodev.toml's `[kubernetes]`: what `kodev watch -k` applies and where (flags override each)."""

    manifests: tuple[str, ...] = ()  # files or directories, relative to the config's directory
    context: str | None = None  # the kubeconfig context (default: its current one)
    namespace: str | None = None  # default: the context's, else `default`
    rollout_timeout: int = DEFAULT_ROLLOUT_TIMEOUT


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
    publish_repo: str | None = None  # [publish] repo: where build and resolve push with no --push
    kubernetes: KubernetesConfig = KubernetesConfig()
    warnings: tuple[str, ...] = ()  # things the file says that kodev ignores (e.g. unsupported .ko.yaml keys)

    def describe(self) -> str:
        return str(self.path) if self.path else "the built-in defaults"

    def command_path(self, path: str) -> str:
        """A command as this config names it (a `[commands]` key, a service's `command`), as `go list` takes
        it: `ko://` dropped, a relative directory resolved against the file's directory (not where kodev runs),
        an import path as it is."""
        target = path.removeprefix(KO_SCHEME)
        return str((self.root / target).resolve()) if target.startswith(".") else target


def find(start: Path, name: str = CONFIG_NAME) -> Path | None:
    """The file `name` in `start` or the nearest parent, stopping at the module root (go.mod) or repo root."""
    for directory in (start, *start.parents):
        candidate = directory / name
        if candidate.is_file():
            return candidate
        if (directory / "go.mod").exists() or (directory / ".git").exists():
            return None
    return None


@dataclass(frozen=True)
class EnvSettings:
    """What kodev's own environment variables say, read once where a command starts (`from_env`) and
    passed down from there: no stage reads them itself."""

    cache: CacheSettings  # KODEV_CACHE_DIR, XDG_CACHE_HOME, KODEV_CACHE_MAX_MB
    debug: bool = False  # KODEV_DEBUG: debug messages, and tracebacks of unexpected errors (as --debug)
    swap: bool = True  # KODEV_SWAP: the default of --swap/--no-swap (0, false or no turn it off)
    swap_copy: bool = False  # KODEV_SWAP_COPY: copy swapped binaries in even where a bind mount works
    direct: bool = True  # KODEV_DIRECT: 0 keeps every watch build a go build (as `[watch] direct = false`)
    epochs: Epochs = field(default_factory=Epochs)  # SOURCE_DATE_EPOCH, KO_DATA_DATE_EPOCH
    dlv: str | None = None  # KODEV_DLV: the static dlv kodev debug puts into containers (else it builds one)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvSettings:
        return cls(cache=CacheSettings.from_env(env), debug=env.get("KODEV_DEBUG", "") not in ("", "0"),
                   swap=env.get("KODEV_SWAP", "1") not in ("0", "false", "no"),
                   swap_copy=env.get("KODEV_SWAP_COPY", "") not in ("", "0"), epochs=Epochs.read(env),
                   direct=env.get("KODEV_DIRECT", "1") not in ("0", "false", "no"),
                   dlv=env.get("KODEV_DLV") or None)
