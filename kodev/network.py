"""Whether the containers about to start can be reached from the host, checked before anything is built.

A daemon started with `--bridge=none` (the private dockerd of kodev's scripts, some CI and rootless
set-ups) has no `bridge` network: a container on the default network gets only its loopback, and a port
published with `-p` / `ports` is reachable from nowhere — docker creates it without a word. There only
host networking works, so kodev says so up front: published ports are an error, and a service left on the
default network is a warning. On a daemon that has the bridge, nothing is checked.

User-defined networks (`--network mynet`) are left to docker: they exist only because the user made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kodev.errors import ConfigError
from kodev.services import ContainerSpec

# Networks that, on a daemon without a bridge, give a container nothing the host can reach.
_UNREACHABLE = (None, "bridge", "none")


@dataclass(frozen=True)
class Origin:
    """Where a container's settings come from, and how to ask for host networking there."""

    where: str  # "kodev run", "kodev.toml: services.api", "kodev watch ./cmd/server"
    fix: str  # "`--network host` (and no -p)", 'network = "host" (and no ports)'


def has_bridge(client: Any) -> bool:
    """Whether the daemon has the default `bridge` network (it does unless started with --bridge=none)."""
    return any(network.get("Name") == "bridge" for network in client.api.networks(names=["bridge"]))


def check(client: Any, specs: Sequence[tuple[ContainerSpec, Origin]]) -> list[str]:
    """`check_spec` for each; the daemon is asked about its bridge only when a spec's network depends on it."""
    if not any(spec.network in _UNREACHABLE for spec, _ in specs):
        return []
    try:
        bridge = has_bridge(client)
    except Exception:  # a daemon that cannot list networks: the build that follows reports it better
        return []
    return [warning for spec, origin in specs if (warning := check_spec(spec, origin, bridge))]


def check_spec(spec: ContainerSpec, origin: Origin, bridge: bool) -> str | None:
    """Raise for published ports that cannot work without a bridge; a warning for a container left unreachable."""
    if bridge or spec.network not in _UNREACHABLE:
        return None
    if spec.ports:
        on = "the default network" if spec.network is None else f"network {spec.network!r}"
        raise ConfigError(
            f"{origin.where}: publishes {', '.join(_port_text(spec))} on {on}, but this Docker daemon has no "
            "bridge network (it was started with --bridge=none), so no published port is reachable from the host. "
            f"Use host networking instead: {origin.fix}, with the program listening on a port of the host "
            "(e.g. -addr 127.0.0.1:8080).")
    if spec.network is None:
        return (f"{origin.where}: this Docker daemon has no bridge network, so the container of {spec.service!r} "
                f"gets no network the host can reach; use {origin.fix} if it should be reachable.")
    return None


def _port_text(spec: ContainerSpec) -> list[str]:
    parts = []
    for port in spec.ports:
        ip = port.host_ip or ""
        host = (f"[{ip}]:" if ":" in ip else f"{ip}:") if ip else ""
        host += f"{port.host_port}:" if port.host_port else ""
        parts.append(f"{host}{port.container_port}/{port.protocol}")
    return parts
