"""Stage 'configure': kodev.toml -> `Config`.

The file is validated against a small schema so that an unknown key or a wrong type is reported with the
file and the dotted key at fault, before anything is built or any container is touched.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kodev import koyaml
from kodev.errors import ConfigError
from kodev.imageref import valid_repository
from kodev.proxy.spec import DEFAULT_HOLD_SECONDS, ProxySpec, parse_address
from kodev.settings import (
    CONFIG_NAME,
    DEFAULT_BASE,
    DEFAULT_REPO,
    DEFAULT_ROLLOUT_TIMEOUT,
    BuildSettings,
    CommandConfig,
    Config,
    KubernetesConfig,
    ServiceConfig,
    WatchSettings,
    find,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# The types live in `settings` (shared with the .ko.yaml reader); they are re-exported from here.
__all__ = ["CONFIG_NAME", "CONTAINER_NAME", "DEFAULT_BASE", "DEFAULT_REPO", "BuildSettings", "CommandConfig",
           "Config", "ServiceConfig", "WatchSettings", "find", "key_path", "load", "parse"]
# --- schema -----------------------------------------------------------------------------------------

_STR, _STRS, _BOOL, _INT, _ENV = "a string", "a list of strings", "true or false", "an integer", "env"

_BUILD_KEYS = {"env": _ENV, "flags": _STRS, "ldflags": _STRS}
_TOP_KEYS = {"base": _STR, "repo": _STR, "platform": _STR, "build": "table", "commands": "table",
             "services": "table", "watch": "table", "compose": _STRS, "publish": "table",
             "kubernetes": "table"}
_COMMAND_KEYS = {"base": _STR, "image": _STR, **_BUILD_KEYS}
_SERVICE_KEYS = {"command": _STR, "args": _STRS, "env": _ENV, "env_file": _STR, "ports": _STRS,
                 "network": _STR, "volumes": _STRS, "user": _STR, "stop_timeout": _INT, "restart": _BOOL,
                 "swap": _BOOL, "delve": _INT, "proxy": _STR, "upstream": _STR, "ready": _STR,
                 "proxy_timeout": _INT}
_KUBERNETES_KEYS = {"manifests": _STRS, "context": _STR, "namespace": _STR, "rollout_timeout": _INT}
_WATCH_KEYS = {"poll": _BOOL, "poll_interval_ms": _INT, "debounce_ms": _INT, "ignore": _STRS, "strip": _BOOL,
               "direct": _BOOL}


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {problem} (key '{key}'). Fix it in {self.path.name} and run again.")

    def table(self, value: Any, key: str, known: Mapping[str, str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "expected a table")
        if known is not None:
            for name in value:
                if name not in known:
                    raise self.fail(_join(key, name),
                                    f"unknown key; known keys here are {', '.join(sorted(known))}")
            for name, kind in known.items():
                if name in value and kind != "table":
                    self.check(value[name], _join(key, name), kind)
        return value

    def check(self, value: Any, key: str, kind: str) -> None:
        ok = {
            _STR: isinstance(value, str),
            _STRS: isinstance(value, list) and all(isinstance(v, str) for v in value),
            _BOOL: isinstance(value, bool),
            _INT: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            _ENV: _is_env(value),
        }[kind]
        if not ok:
            wanted = 'a list of "KEY=VALUE" strings or a table of strings' if kind == _ENV else kind
            if kind == _INT:
                wanted = "a non-negative integer"
            raise self.fail(key, f"expected {wanted}, got {_describe(value)}")
        if kind == _ENV and isinstance(value, list):
            for item in value:
                if "=" not in item or item.startswith("="):
                    raise self.fail(key, f'"{item}" is not of the form KEY=VALUE')
        if kind == _ENV and isinstance(value, dict):
            for name in value:
                if not name or "=" in name:
                    raise self.fail(key, f'"{name}" cannot name an environment variable')


def key_path(*names: str) -> str:
    """A dotted key as errors name it: `services.server.command`, `commands."./cmd/server"`."""
    path = ""
    for name in names:
        path = _join(path, name)
    return path


def _join(key: str, name: str) -> str:
    part = name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
    return f"{key}.{part}" if key else part


def _is_env(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _env(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict):
        return tuple(f"{k}={v}" for k, v in value.items())
    return tuple(value)


def _describe(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
             dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _build_settings(table: Mapping[str, Any]) -> BuildSettings:
    return BuildSettings(
        env=_env(table["env"]) if "env" in table else None,
        flags=tuple(table["flags"]) if "flags" in table else None,
        ldflags=tuple(table["ldflags"]) if "ldflags" in table else None,
    )


def _delve_port(reader: _Reader, key: str, table: Mapping[str, Any], earlier: Mapping[str, ServiceConfig]
                ) -> int | None:
    """`delve = PORT` (kodev debug): a TCP port no other service's Delve takes."""
    port = table.get("delve")
    if port is None:
        return None
    if not 0 < port < 65536:
        raise reader.fail(_join(key, "delve"), f"{port} is not a TCP port (1 to 65535)")
    taken = next((name for name, service in earlier.items() if service.delve == port), None)
    if taken is not None:
        raise reader.fail(_join(key, "delve"), f"port {port} is also services.{taken}'s Delve port; each "
                                               "service's Delve needs a port of its own")
    return int(port)


def _proxy(reader: _Reader, key: str, table: Mapping[str, Any]) -> ProxySpec | None:
    """`proxy` (where the dev proxy listens) with `upstream` (where the app listens), `ready`, `proxy_timeout`."""
    if "proxy" not in table:
        for lonely in ("upstream", "ready", "proxy_timeout"):
            if lonely in table:
                raise reader.fail(_join(key, lonely), "only means something with `proxy` (where the dev proxy "
                                                      "listens, e.g. \"127.0.0.1:8080\"): add it, or remove this")
        return None
    if "upstream" not in table:
        raise reader.fail(_join(key, "upstream"), "missing: with `proxy`, say where the app itself listens "
                                                  '(e.g. "127.0.0.1:9000"; a bare port means 127.0.0.1)')
    listen, upstream = parse_address(table["proxy"]), parse_address(table["upstream"])
    for name, address in (("proxy", listen), ("upstream", upstream)):
        if address is None:
            raise reader.fail(_join(key, name), f"{table[name]!r} is not HOST:PORT or a port (1 to 65535)")
    assert listen is not None and upstream is not None
    if listen == upstream:
        raise reader.fail(_join(key, "proxy"), "the proxy and the app cannot both listen on "
                                               f"{table['proxy']}: give the app another port with `upstream`")
    ready = table.get("ready")
    if ready is not None and not ready.startswith("/"):
        raise reader.fail(_join(key, "ready"), f"{ready!r} is not a path: it starts with '/' (e.g. \"/healthz\")")
    timeout = table.get("proxy_timeout", DEFAULT_HOLD_SECONDS)
    if timeout <= 0:
        raise reader.fail(_join(key, "proxy_timeout"), "expected seconds, more than 0")
    return ProxySpec(listen, upstream, ready, float(timeout))


def _publish_repo(reader: _Reader, table: Any) -> str | None:
    """`[publish] repo = "HOST[:PORT]/PATH"`: where `kodev resolve` (and `kodev watch -f k8s/`) push without
    --push or KO_DOCKER_REPO."""
    repo = reader.table(table, "publish", {"repo": _STR}).get("repo")
    if repo is not None and ("/" not in repo or repo != repo.lower() or " " in repo):
        raise reader.fail("publish.repo", f"{repo!r} is not a registry repository (lowercase HOST[:PORT]/PATH, "
                                          "e.g. \"127.0.0.1:5000/team\")")
    return repo


def parse(text: str, path: Path) -> Config:
    """Parse the text of a kodev.toml found at `path`."""
    reader = _Reader(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}. Fix the syntax and run again.") from None
    top = reader.table(data, "", _TOP_KEYS)

    build = _build_settings(reader.table(top.get("build", {}), "build", _BUILD_KEYS))
    commands: dict[str, CommandConfig] = {}
    for key, raw in reader.table(top.get("commands", {}), "commands", None).items():
        table = reader.table(raw, _join("commands", key), _COMMAND_KEYS)
        if "image" in table and not valid_repository(table["image"]):
            raise reader.fail(_join(_join("commands", key), "image"),
                              f"'{table['image']}' is not a valid image name (lowercase letters, digits, "
                              "'.', '_', '-', components joined by '/'; no tag)")
        commands[key] = CommandConfig(path=key, base=table.get("base"), image=table.get("image"),
                                      build=_build_settings(table))

    services: dict[str, ServiceConfig] = {}
    for name, raw in reader.table(top.get("services", {}), "services", None).items():
        key = _join("services", name)
        if not CONTAINER_NAME.match(name):
            # The service name is its container's name; Docker (and Podman) refuse this one at creation.
            raise reader.fail(key, f"'{name}' cannot name a container: Docker wants two or more letters, digits, "
                                   "'_', '.' or '-', starting with a letter or digit. Rename the service")
        table = reader.table(raw, key, _SERVICE_KEYS)
        if "command" not in table:
            raise reader.fail(_join(key, "command"), 'missing: say which command it runs, e.g. "./cmd/server"')
        services[name] = ServiceConfig(
            name=name, command=table["command"], args=tuple(table.get("args", ())),
            env=_env(table.get("env", [])), env_file=table.get("env_file"),
            ports=tuple(table.get("ports", ())), network=table.get("network"),
            volumes=tuple(table.get("volumes", ())), user=table.get("user"),
            stop_timeout=table.get("stop_timeout", 10), restart=table.get("restart", True),
            swap=table.get("swap", True), delve=_delve_port(reader, key, table, services),
            proxy=_proxy(reader, key, table),
        )

    watch_table = reader.table(top.get("watch", {}), "watch", _WATCH_KEYS)
    watch = WatchSettings(
        poll=watch_table.get("poll", False),
        poll_interval_ms=watch_table.get("poll_interval_ms", 300),
        debounce_ms=watch_table.get("debounce_ms", 25),
        strip=watch_table.get("strip", True),
        direct=watch_table.get("direct", True),
        ignore=tuple(watch_table.get("ignore", ())),
    )
    repo = top.get("repo", DEFAULT_REPO)
    if not valid_repository(repo):
        raise reader.fail("repo", f"'{repo}' is not a valid repository name")
    return Config(root=path.parent, path=path, base=top.get("base", DEFAULT_BASE), repo=repo,
                  platform=top.get("platform"), build=build, commands=commands, services=services,
                  watch=watch, compose=tuple(top.get("compose", ())),
                  publish_repo=_publish_repo(reader, top.get("publish", {})),
                  kubernetes=_kubernetes(reader, top.get("kubernetes", {})))


def _kubernetes(reader: _Reader, value: Any) -> KubernetesConfig:
    """`[kubernetes]`: the manifests `kodev watch -k` applies (with no -k PATH), the context and namespace."""
    table = reader.table(value, "kubernetes", _KUBERNETES_KEYS)
    timeout = table.get("rollout_timeout", DEFAULT_ROLLOUT_TIMEOUT)
    if timeout == 0:
        raise reader.fail("kubernetes.rollout_timeout", "expected seconds, more than 0")
    return KubernetesConfig(tuple(table.get("manifests", ())), table.get("context"), table.get("namespace"), timeout)


CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # Docker's rule for container names


def load(explicit: Path | None, cwd: Path) -> Config:
    """`--config PATH` if given, else the nearest kodev.toml, else ko's .ko.yaml, else defaults at `cwd`."""
    path = explicit if explicit is not None else find(cwd)
    if path is None or path.suffix in (".yaml", ".yml"):
        ko_config = path or koyaml.find(cwd)
        if ko_config is not None:
            return koyaml.load(ko_config if ko_config.is_absolute() else cwd / ko_config, cwd)
        return Config(root=cwd)
    path = path if path.is_absolute() else cwd / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file. Check the --config path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc}).") from None
    return parse(text, path)
