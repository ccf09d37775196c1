"""Container settings, from `kodev run` flags or a `[services.NAME]` table, parsed as the docker CLI does.

Pure: every spec string is validated here, with an error naming the flag or key, before any container
is touched.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kodev.config import CONTAINER_NAME, ServiceConfig
from kodev.errors import ConfigError
from kodev.proxy.spec import ProxySpec

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV_KEY = re.compile(r"^[^=\s]+$")


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    protocol: str
    host_ip: str | None
    host_port: int | None  # None: the daemon picks one


@dataclass(frozen=True)
class Mount:
    source: str  # an absolute host path, or a named volume
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to (re)create one service's container on a new image with the same settings."""

    service: str
    name: str
    command: str  # the command path it runs, as configured
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    network: str | None = None
    mounts: tuple[Mount, ...] = ()
    user: str | None = None
    stop_timeout: int = 10
    remove_on_exit: bool = True  # --rm
    restart: bool = True  # false: started once, never recreated nor removed by kodev
    swap: bool = True  # watch: swap a new binary in place (kodev's supervisor) instead of recreating
    delve: int | None = None  # kodev debug: Delve's port, as configured (None: kodev picks one)
    # watch: the dev proxy in front of it; not part of what the container is (a change never recreates it)
    proxy: ProxySpec | None = field(default=None, compare=False)


def parse_port(spec: str, where: str) -> PortBinding:
    """`[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]` or `CONTAINER_PORT[/PROTO]`, as `docker run -p` reads it."""
    text = spec.strip()
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    host_ip = None
    if text.startswith("["):  # [IPv6]:HOST:CONTAINER
        closing = text.find("]:")
        if closing < 0:
            raise _bad_port(spec, where)
        host_ip, text = text[1:closing], text[closing + 2:]
    parts = text.split(":")
    if host_ip is None and len(parts) == 3:
        host_ip = parts.pop(0)
    if proto not in ("tcp", "udp", "sctp") or len(parts) not in (1, 2) or (host_ip is not None and len(parts) != 2):
        raise _bad_port(spec, where)
    if host_ip is not None:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise ConfigError(f"{where}: port {spec!r}: {host_ip!r} is not an IP address.") from None
    if not all(part.isdigit() for part in parts if part) or not parts[-1]:
        raise _bad_port(spec, where)
    numbers = [int(part) for part in parts if part]
    if any(not 0 < number < 65536 for number in numbers):
        raise ConfigError(f"{where}: port {spec!r}: port numbers must be between 1 and 65535.")
    host_port = int(parts[0]) if len(parts) == 2 and parts[0] else None
    return PortBinding(int(parts[-1]), proto, host_ip, host_port)


def _bad_port(spec: str, where: str) -> ConfigError:
    return ConfigError(f"{where}: port {spec!r} is not of the form [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO], "
                       "e.g. 127.0.0.1:8080:8080 or 8080:80/tcp.")


def parse_volume(spec: str, base_dir: Path, where: str) -> Mount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ConfigError(f"{where}: volume {spec!r} is not of the form SRC:DST[:ro|rw].")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ConfigError(f"{where}: volume {spec!r}: mode {mode!r} must be ro or rw.")
    if not target.startswith("/"):
        raise ConfigError(f"{where}: volume {spec!r}: the container path {target!r} must be absolute.")
    if source.startswith((".", "/", "~")):
        source = str((base_dir / os.path.expanduser(source)).resolve())
    elif not _NAME.match(source):
        raise ConfigError(f"{where}: volume {spec!r}: {source!r} is neither a path nor a volume name.")
    return Mount(source, target, mode == "ro")


def parse_env(items: Sequence[str], where: str) -> tuple[str, ...]:
    """`KEY=VALUE`, or `KEY` alone to pass the variable through from kodev's environment (as docker does)."""
    result = []
    for item in items:
        key = item.split("=", 1)[0]
        if not key or not _ENV_KEY.match(key):
            raise ConfigError(f"{where}: env {item!r} is not of the form KEY=VALUE.")
        if "=" in item:
            result.append(item)
        elif key in os.environ:
            result.append(f"{key}={os.environ[key]}")
    return tuple(result)


def read_env_file(path: Path, where: str) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read env file {path}: {exc.strerror or exc}.") from None
    items = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return parse_env(items, f"{where} ({path})")


def parse_network(value: str | None, where: str) -> str | None:
    if value is not None and not _NAME.match(value):
        raise ConfigError(f"{where}: network {value!r} is not a valid network name.")
    return value


def container_name(value: str, where: str) -> str:
    if not CONTAINER_NAME.match(value):
        raise ConfigError(f"{where}: container name {value!r} must be two or more letters, digits, '_', '.' "
                          "and '-', starting with a letter or digit (Docker refuses any other).")
    return value


def container_spec(service: ServiceConfig, base_dir: Path, where: str, name: str | None = None,
                   remove_on_exit: bool = True) -> ContainerSpec:
    """The container for `service` (a `[services.X]` table, or `kodev run` flags shaped as one)."""
    env: tuple[str, ...] = ()
    if service.env_file:
        env += read_env_file(base_dir / service.env_file, where)
    env += parse_env(service.env, where)
    return ContainerSpec(
        service=service.name,
        name=container_name(name or service.name, where),
        command=service.command,
        args=service.args,
        env=env,
        ports=tuple(parse_port(p, where) for p in service.ports),
        network=parse_network(service.network, where),
        mounts=tuple(parse_volume(v, base_dir, where) for v in service.volumes),
        user=service.user,
        stop_timeout=service.stop_timeout,
        remove_on_exit=remove_on_exit,
        restart=service.restart,
        swap=service.swap,
        delve=service.delve,
        proxy=service.proxy,
    )
