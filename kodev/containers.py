"""Stage 'run': containers kodev creates, recreates, stops and removes — and only those.

Every container carries labels naming its owner (host, pid, process start time, session). A later kodev
removes containers whose owner is dead, and refuses to touch anything it did not create.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kodev.errors import DaemonError, KodevError
from kodev.services import ContainerSpec

log = logging.getLogger(__name__)

MANAGED_LABEL = "dev.kodev.managed"
SERVICE_LABEL = "dev.kodev.service"
SESSION_LABEL = "dev.kodev.session"
OWNER_HOST_LABEL = "dev.kodev.owner.host"
OWNER_PID_LABEL = "dev.kodev.owner.pid"
OWNER_START_LABEL = "dev.kodev.owner.start"
KEEP_LABEL = "dev.kodev.keep"  # restart = false: left as it is when kodev exits
NO_RM_LABEL = "dev.kodev.no-rm"  # kodev run --no-rm: kept after it exits on its own, for docker logs


class ContainerError(KodevError):
    """A container could not be created or started (name taken, port in use, ...)."""


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when unknown): tells a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str
    session: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _process_start(pid), uuid.uuid4().hex[:12])

    def labels(self) -> dict[str, str]:
        return {MANAGED_LABEL: "true", OWNER_HOST_LABEL: self.host, OWNER_PID_LABEL: str(self.pid),
                OWNER_START_LABEL: self.start, SESSION_LABEL: self.session}


def owner_alive(labels: Mapping[str, str]) -> bool:
    """Whether the kodev that created a container still runs. Another host's kodev counts as alive."""
    if labels.get(OWNER_HOST_LABEL) != socket.gethostname():
        return True
    try:
        pid = int(labels.get(OWNER_PID_LABEL, ""))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    recorded = labels.get(OWNER_START_LABEL, "")
    return not recorded or recorded == _process_start(pid)


def _port_map(spec: ContainerSpec) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for port in spec.ports:
        host: Any = port.host_port
        if port.host_ip is not None:
            host = (port.host_ip, port.host_port)
        ports[f"{port.container_port}/{port.protocol}"] = host
    return ports


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
        reaped = []
        for found in self._listed(f"{MANAGED_LABEL}=true"):
            labels = found.get("Labels") or {}
            if labels.get(KEEP_LABEL) == "true" or owner_alive(labels):
                continue
            if labels.get(NO_RM_LABEL) == "true" and found.get("State") == "exited":
                continue  # kept on purpose (--no-rm); replaced when its name is next used
            try:
                self.client.api.remove_container(found["Id"], force=True)
            except Exception as exc:  # removed meanwhile, or the daemon refuses: the next kodev tries again
                log.debug("could not remove orphan %s: %s", _name(found), exc)
                continue
            reaped.append(_name(found))
        return reaped

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
               extra_volumes: Mapping[str, dict[str, str]] | None = None, control_channel: bool = False) -> str:
        """Create (not start) the container for `spec`; its name must be free (see claim_name).

        `entrypoint` replaces the image's (kodev's supervisor runs the image's own); `extra_volumes` are
        bind mounts kodev adds (the supervisor's directory); `control_channel` opens stdin for kodev to
        attach to, closed again when kodev detaches (StdinOnce: the SDK sets it when not `detach`)."""
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
                entrypoint=entrypoint, **network,
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
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(container_id, force=True)

    def exists(self, container_id: str) -> bool:
        import docker.errors

        try:
            self.client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return False
        return True

    def exit_code(self, container_id: str) -> int | None:
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except Exception as exc:
            log.debug("cannot inspect %s: %s", container_id[:12], exc)
            return None
        return None if state.get("Running") else int(state.get("ExitCode", 0))

    def cleanup(self, timeouts: Mapping[str, int]) -> list[str]:
        """Stop and remove every container of this session, except kept ones; in parallel. Their names."""
        try:
            found = self._listed(f"{SESSION_LABEL}={self.owner.session}")
        except Exception as exc:
            from kodev.daemon import reason

            raise DaemonError(f"cannot list kodev's containers to clean up: the Docker daemon is not answering "
                              f"({reason(exc)})") from None
        doomed = [c for c in found if (c.get("Labels") or {}).get(KEEP_LABEL) != "true"]

        def remove(container: dict[str, Any]) -> None:
            self.remove(container["Id"], timeouts.get((container.get("Labels") or {}).get(SERVICE_LABEL, ""), 10))

        with ThreadPoolExecutor(max_workers=max(1, len(doomed))) as pool:
            list(pool.map(remove, doomed))
        return [_name(c) for c in doomed]


def _name(listed: dict[str, Any]) -> str:
    names = listed.get("Names") or [listed.get("Id", "")[:12]]
    return str(names[0]).lstrip("/")


class Replacement:
    """Replacing one service's container, in two steps around the load of the new image.

    Begun before the load: the old container is renamed out of the way and stopped (SIGTERM, grace
    period) in the background, so its graceful shutdown overlaps the load. `finish` creates and starts
    the new container under the name; `undo` starts the old one again if the new image never arrived.
    """

    def __init__(self, containers: Containers, old_id: str, spec: ContainerSpec) -> None:
        self.containers = containers
        self.old_id = old_id
        self.spec = spec
        self._renamed = False
        self._rename_tried = threading.Event()
        self._stopper = threading.Thread(target=self._stop_old, name=f"stop-{spec.service}", daemon=True)
        self._stopper.start()

    def _stop_old(self) -> None:
        api = self.containers.client.api
        try:
            api.rename(self.old_id, f"{self.spec.name}-replaced-{self.old_id[:12]}")
            self._renamed = True
        except Exception as exc:  # gone already, or cannot be renamed: finish() removes it first
            log.debug("cannot rename %s out of the way: %s", self.old_id[:12], exc)
        finally:
            self._rename_tried.set()
        try:
            api.stop(self.old_id, timeout=self.spec.stop_timeout)
        except Exception as exc:
            log.debug("stop of the replaced %s: %s", self.old_id[:12], exc)

    def finish(self, image: str, create: Callable[[], str] | None = None) -> str:
        """The new container, started; the old one removed. `create` makes the new container (not started)
        when it needs more than the spec says (the supervisor)."""
        self._rename_tried.wait()
        make = create or (lambda: self.containers.create(self.spec, image))
        new_id = make() if self._renamed else None  # while the old one stops
        self._stopper.join()
        self.containers.remove(self.old_id, 0)
        if new_id is None:
            if create is None:
                return self.containers.create_and_start(self.spec, image)
            self.containers.claim_name(self.spec)
            new_id = create()
        self.containers.start(new_id, self.spec)
        return new_id

    def undo(self) -> None:
        """Bring the old container back under its name (the new image could not be loaded)."""
        self._stopper.join()
        api = self.containers.client.api
        try:
            if self._renamed:
                api.rename(self.old_id, self.spec.name)
            api.start(self.old_id)
        except Exception as exc:
            log.debug("could not bring back %s: %s", self.old_id[:12], exc)


LineSink = Callable[[str, str, str], None]  # (service, "stdout" | "stderr", line)
# (service, container id, exit code or None when the stream broke without one, last lines)
ExitSink = Callable[[str, str, int | None, list[str]], None]


class LogFollower(threading.Thread):
    """Streams one container's stdout and stderr line by line until it ends, then reports its exit code."""

    def __init__(self, client: Any, service: str, container_id: str, on_line: LineSink, on_exit: ExitSink,
                 close_client: bool = False) -> None:
        """`close_client`: the client is this follower's own (Daemon.open_client), closed when it ends."""
        super().__init__(name=f"logs-{service}", daemon=True)
        self.client = client
        self.close_client = close_client
        self.service = service
        self.container_id = container_id
        self.on_line = on_line
        self.on_exit = on_exit
        self.last_lines: deque[str] = deque(maxlen=10)

    def run(self) -> None:
        # Two `logs --follow` streams rather than one attach: attach does not end when the container
        # exits on some daemons, while a followed log ends exactly then.
        errors = threading.Thread(target=self._pump, args=("stderr",), daemon=True)
        errors.start()
        self._pump("stdout")
        errors.join()
        code: int | None
        try:
            code = int(self.client.api.wait(self.container_id).get("StatusCode", 0))
        except Exception as exc:
            log.debug("no exit code for %s: %s", self.service, exc)
            code = None  # removed under us, or the daemon went away
        if self.close_client:
            with contextlib.suppress(Exception):
                self.client.close()
        self.on_exit(self.service, self.container_id, code, list(self.last_lines))

    def _pump(self, name: str) -> None:
        rest = b""
        try:
            for data in self.client.api.logs(self.container_id, stream=True, follow=True,
                                             stdout=name == "stdout", stderr=name == "stderr"):
                rest = self._emit(name, rest + data)
        except Exception as exc:
            log.debug("%s log stream of %s ended: %s", name, self.service, exc)
        if rest:
            self._line(name, rest)

    def _emit(self, name: str, data: bytes) -> bytes:
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._line(name, line)
        return rest

    def _line(self, name: str, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        self.last_lines.append(line)
        self.on_line(self.service, name, line)
