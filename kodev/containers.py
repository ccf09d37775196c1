"""Stage 'run': containers kodev creates, starts, stops and removes — and only those (kodev/ownership.py says
which are kodev's)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from kodev.errors import DaemonError, KodevError
from kodev.ownership import (
    KEEP_LABEL,
    MANAGED_LABEL,
    NO_RM_LABEL,
    OWNER_PID_LABEL,
    SERVICE_LABEL,
    SESSION_LABEL,
    Owner,
    container_name,
    owner_alive,
    reap_orphans,
)
from kodev.services import ContainerSpec

log = logging.getLogger(__name__)


class ContainerError(KodevError):
    """A container could not be created or started (name taken, port in use, ...)."""


def _port_map(spec: ContainerSpec) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for port in spec.ports:
        host: Any = port.host_port
        if port.host_ip is not None:
            host = (port.host_ip, port.host_port)
        ports[f"{port.container_port}/{port.protocol}"] = host
    return ports


@dataclass(frozen=True)
class Ended:
    """How a container ended: its exit code, and when (seconds since the epoch, the daemon's clock; 0 if
    unknown)."""

    code: int
    at: float


def _epoch_seconds(rfc3339: str) -> float:
    """Docker's `FinishedAt` (nanoseconds, 'Z') as seconds since the epoch; 0 when it cannot be read."""
    from datetime import datetime

    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")
    except ValueError:
        return 0.0


class ContainerRuntime(Protocol):
    """What deliveries ask of the containers they run (`Containers` over the real daemon)."""

    def claim_name(self, spec: ContainerSpec) -> Any | None: ...

    def create_and_start(self, spec: ContainerSpec, image: str) -> str: ...

    def create(self, spec: ContainerSpec, image: str, entrypoint: list[str] | None = None,
               extra_volumes: Mapping[str, dict[str, str]] | None = None, control_channel: bool = False,
               capabilities: Sequence[str] = ()) -> str: ...

    def start(self, container_id: str, spec: ContainerSpec) -> None: ...

    def remove(self, container_id: str, timeout: int) -> None: ...

    def rename(self, container_id: str, name: str) -> None: ...

    def stop(self, container_id: str, timeout: int) -> None: ...

    def resume(self, container_id: str) -> None: ...


class Containers:
    """Creates and removes this session's containers; the docker client and UI callbacks are passed in."""

    def __init__(self, client: Any, owner: Owner) -> None:
        self.client = client
        self.owner = owner

    def _listed(self, label: str) -> list[dict[str, Any]]:
        """Containers with `label`, as the list endpoint gives them (no per-container inspect, which races
        with containers that are being removed)."""
        return list(self.client.api.containers(all=True, filters={"label": label}))

    def reap_orphans(self) -> list[str]:
        """Remove containers left by a kodev that is no longer running (killed outright); their names."""
        return reap_orphans(self.client, self._listed(f"{MANAGED_LABEL}=true"))

    def claim_name(self, spec: ContainerSpec) -> Any | None:
        """Make `spec.name` free for us. Returns a kept (restart = false) container to reuse, if any."""
        import docker.errors

        try:
            existing = self.client.containers.get(spec.name)
        except docker.errors.NotFound:
            return None
        labels = existing.labels or {}
        if labels.get(MANAGED_LABEL) != "true":
            raise ContainerError(
                f"a container named {spec.name!r} already exists ({existing.short_id}, image "
                f"{(existing.image.tags or [existing.image.short_id])[0] if existing.image else '?'}) and "
                "kodev did not create it, so kodev will not touch it. Choose another name (--name, or "
                "the service name in kodev.toml) or remove that container yourself.")
        if labels.get(KEEP_LABEL) == "true" and not spec.restart:
            return existing
        if labels.get(SESSION_LABEL) != self.owner.session and owner_alive(labels):
            raise ContainerError(
                f"container {spec.name!r} belongs to another kodev that is still running (pid "
                f"{labels.get(OWNER_PID_LABEL)}). Stop that kodev, or choose another name.")
        self.remove(existing.id, timeout=spec.stop_timeout)
        return None

    def create_and_start(self, spec: ContainerSpec, image: str) -> str:
        """Create the container for `spec` on `image` and start it; its ID."""
        kept = self.claim_name(spec)
        if kept is not None:
            if kept.status != "running":
                kept.start()
            return str(kept.id)
        container_id = self.create(spec, image)
        self.start(container_id, spec)
        return container_id

    def create(self, spec: ContainerSpec, image: str, entrypoint: list[str] | None = None,
               extra_volumes: Mapping[str, dict[str, str]] | None = None, control_channel: bool = False,
               capabilities: Sequence[str] = ()) -> str:
        """Create (not start) the container for `spec`; its name must be free (see claim_name).

        `entrypoint` replaces the image's (kodev's supervisor runs the image's own); `extra_volumes` are
        bind mounts kodev adds (the supervisor's directory); `control_channel` opens stdin for kodev to
        attach to, closed again when kodev detaches (StdinOnce: the SDK sets it when not `detach`);
        `capabilities` are added to the container's (the supervisor's, see SwapKit.CAPABILITIES)."""
        import docker.errors

        labels = {**self.owner.labels(), SERVICE_LABEL: spec.service}
        if not spec.restart:
            labels[KEEP_LABEL] = "true"
        if not spec.remove_on_exit:
            labels[NO_RM_LABEL] = "true"
        network: dict[str, Any] = {}
        if spec.network in ("host", "none", "bridge") or (spec.network or "").startswith("container:"):
            network["network_mode"] = spec.network
        elif spec.network:
            network["network"] = spec.network
        try:
            container = self.client.containers.create(
                image, list(spec.args) or None, name=spec.name, environment=list(spec.env),
                ports=_port_map(spec) or None, user=spec.user or None, labels=labels,
                detach=not control_channel, stdin_open=control_channel,
                volumes={**{m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                            for m in spec.mounts}, **(extra_volumes or {})} or None,
                entrypoint=entrypoint, cap_add=list(capabilities) or None, **network,
            )
        except docker.errors.APIError as exc:
            raise ContainerError(f"cannot create container {spec.name!r} from {image}: {exc.explanation or exc}"
                                 ) from None
        return str(container.id)

    def start(self, container_id: str, spec: ContainerSpec) -> None:
        """Start a created container; if it cannot start, it is removed and the error says why."""
        import docker.errors

        try:
            self.client.api.start(container_id)
        except docker.errors.APIError as exc:
            try:
                self.client.api.remove_container(container_id, force=True)
            except Exception as removal:
                log.debug("could not remove %s after its failed start: %s", spec.name, removal)
            detail = str(exc.explanation or exc)
            if "port is already allocated" in detail or "address already in use" in detail:
                ports = ", ".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}" for p in spec.ports)
                raise ContainerError(f"cannot start {spec.name!r}: a host port it publishes ({ports}) is already "
                                     "in use. Free it or publish another port (-p).") from None
            raise ContainerError(f"cannot start container {spec.name!r}: {detail}") from None

    def remove(self, container_id: str, timeout: int) -> None:
        """Stop (SIGTERM, then SIGKILL after `timeout` seconds) and remove; gone already is fine."""
        import docker.errors

        try:
            self.client.api.stop(container_id, timeout=timeout)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            log.debug("stop of %s refused (removal forces it): %s", container_id[:12], exc)
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or "in progress" not in str(exc.explanation or exc):
                raise
            self._wait_gone(container_id)  # another kodev reaps it too (a dead kodev's): gone soon

    def _wait_gone(self, container_id: str, seconds: float = 30.0) -> None:
        import time

        deadline = time.monotonic() + seconds
        while self.exists(container_id) and time.monotonic() < deadline:
            time.sleep(0.05)

    def rename(self, container_id: str, name: str) -> None:
        self.client.api.rename(container_id, name)

    def stop(self, container_id: str, timeout: int) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; the container stays (see `remove`)."""
        self.client.api.stop(container_id, timeout=timeout)

    def resume(self, container_id: str) -> None:
        """Start a stopped container again (one that was being replaced)."""
        self.client.api.start(container_id)

    def exists(self, container_id: str) -> bool:
        import docker.errors

        try:
            self.client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return False
        return True

    def existing(self, container_ids: Sequence[str]) -> set[str]:
        """Which of `container_ids` exist (running or not): one request for all, as an idle loop asks."""
        if not container_ids:
            return set()
        listed = [c["Id"] for c in self.client.api.containers(all=True, filters={"id": list(container_ids)})]
        return {wanted for wanted in container_ids if any(found.startswith(wanted) for found in listed)}

    def exit_code(self, container_id: str) -> int | None:
        ended = self.ended(container_id)
        return ended.code if ended is not None else None

    def ended(self, container_id: str) -> Ended | None:
        """How a stopped container ended; None while it runs (or when it cannot be inspected)."""
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except Exception as exc:
            log.debug("cannot inspect %s: %s", container_id[:12], exc)
            return None
        if state.get("Running"):
            return None
        return Ended(int(state.get("ExitCode", 0)), _epoch_seconds(str(state.get("FinishedAt", ""))))

    def cleanup(self, timeouts: Mapping[str, int]) -> list[str]:
        """Stop and remove every container of this session, except kept ones; in parallel. Their names.

        Twice: a create that was in flight when kodev was told to stop (the signal cut kodev's wait for the
        answer, not the daemon's work) lands after the first listing; the second, after the first removals
        (seconds: stop timeouts), finds it."""
        removed: list[dict[str, Any]] = []
        for _ in range(2):
            doomed = [c for c in self._session_containers() if (c.get("Labels") or {}).get(KEEP_LABEL) != "true"
                      and c["Id"] not in {r["Id"] for r in removed}]
            if not doomed:
                break

            def remove(container: dict[str, Any]) -> None:
                self.remove(container["Id"], timeouts.get((container.get("Labels") or {}).get(SERVICE_LABEL, ""),
                                                          10))

            with ThreadPoolExecutor(max_workers=max(1, len(doomed))) as pool:
                list(pool.map(remove, doomed))
            removed += doomed
        return [container_name(c) for c in removed]

    def _session_containers(self) -> list[dict[str, Any]]:
        try:
            return self._listed(f"{SESSION_LABEL}={self.owner.session}")
        except Exception as exc:
            from kodev.daemon import reason

            raise DaemonError(f"cannot list kodev's containers to clean up: the Docker daemon is not answering "
                              f"({reason(exc)})") from None
