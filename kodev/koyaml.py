"""Stage 'configure', for ko users: `.ko.yaml` -> `Config`, with ko's semantics.

Read when there is no kodev.toml. `KO_CONFIG_PATH` (a file, or a directory holding .ko.yaml) names it as
ko does; `KO_DEFAULTBASEIMAGE` overrides `defaultBaseImage`. A build's own env/flags/ldflags replace the
defaults (no merging), as in ko. Keys kodev does not use are named once in a warning.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from kodev.errors import ConfigError
from kodev.settings import DEFAULT_BASE, BuildSettings, CommandConfig, Config
from kodev.settings import find as find_file

KO_CONFIG = ".ko.yaml"
_SUPPORTED = {"defaultBaseImage", "baseImageOverrides", "builds", "defaultEnv", "defaultFlags", "defaultLdflags"}
_BUILD_SUPPORTED = {"id", "dir", "main", "env", "flags", "ldflags"}


def find(cwd: Path) -> Path | None:
    explicit = os.environ.get("KO_CONFIG_PATH")
    if explicit:
        path = Path(explicit)
        path = path / KO_CONFIG if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"KO_CONFIG_PATH={explicit}: no {KO_CONFIG} there. Fix or unset KO_CONFIG_PATH.")
        return path
    return find_file(cwd, KO_CONFIG)


def _strings(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ConfigError(f"{path}: key '{key}' must be a list of strings. Fix it in {path.name} and run again.")
    return tuple(str(v) for v in value)


def _env(value: Any, key: str, path: Path) -> tuple[str, ...]:
    """ko's `env`/`defaultEnv`: a list of KEY=VALUE strings (what `go build` gets in its environment)."""
    items = _strings(value, key, path)
    for item in items:
        name, equals, _ = item.partition("=")
        if not equals or not name.strip():
            raise ConfigError(f"{path}: key '{key}' has {item!r}, which is not of the form KEY=VALUE (e.g. "
                              f"CGO_ENABLED=0): ko passes each item to `go build` as an environment variable. "
                              f"Fix it in {path.name} and run again.")
    return items


def _string(value: Any, key: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: key '{key}' must be a non-empty string. Fix it in {path.name} and run again.")
    return value


def load(path: Path, cwd: Path) -> Config:
    """Read `path`. As in ko, `builds[].dir`/`main` are relative to where kodev runs when KO_CONFIG_PATH
    names the file; a .ko.yaml found in a directory is relative to that directory."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}. Fix the syntax and run again.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of ko settings at the top level.")
    ignored = sorted(k for k in data if k not in _SUPPORTED)

    base = os.environ.get("KO_DEFAULTBASEIMAGE") or (
        _string(data["defaultBaseImage"], "defaultBaseImage", path) if "defaultBaseImage" in data else DEFAULT_BASE)
    defaults = BuildSettings(
        env=_env(data["defaultEnv"], "defaultEnv", path) if "defaultEnv" in data else None,
        flags=_strings(data["defaultFlags"], "defaultFlags", path) if "defaultFlags" in data else None,
        ldflags=_strings(data["defaultLdflags"], "defaultLdflags", path) if "defaultLdflags" in data else None,
    )
    commands: dict[str, CommandConfig] = {}
    builds = data.get("builds") or []
    if not isinstance(builds, list):
        raise ConfigError(f"{path}: key 'builds' must be a list of builds.")
    for index, build in enumerate(builds):
        where = f"builds[{index}]"
        if not isinstance(build, dict):
            raise ConfigError(f"{path}: key '{where}' must be a mapping (id, dir, main, env, flags, ldflags).")
        ignored += [f"{where}.{k}" for k in sorted(build) if k not in _BUILD_SUPPORTED]
        main = _string(build.get("main", "."), f"{where}.main", path)
        directory = _string(build.get("dir", "."), f"{where}.dir", path)
        key = main if not main.startswith(".") else "./" + posixpath.normpath(posixpath.join(directory, main))
        commands[key] = CommandConfig(path=key, build=BuildSettings(
            env=_env(build["env"], f"{where}.env", path) if "env" in build else None,
            flags=_strings(build["flags"], f"{where}.flags", path) if "flags" in build else None,
            ldflags=_strings(build["ldflags"], f"{where}.ldflags", path) if "ldflags" in build else None,
        ))
    overrides = data.get("baseImageOverrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: key 'baseImageOverrides' must map import paths to base images.")
    for import_path, override in overrides.items():
        key = str(import_path)
        existing = commands.get(key, CommandConfig(path=key))
        commands[key] = CommandConfig(path=key, base=_string(override, f"baseImageOverrides.{key}", path),
                                      image=existing.image, build=existing.build)
    warnings = (f"{path}: kodev ignores {', '.join(ignored)}.",) if ignored else ()
    root = cwd if os.environ.get("KO_CONFIG_PATH") else path.parent
    return Config(root=root, path=path, base=base, build=defaults, commands=commands, warnings=warnings)
