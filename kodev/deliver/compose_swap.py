"""Swapping binaries into containers Compose runs: the supervisor goes in through kodev's override file.

For each kodev service that can swap, the override sets the supervisor as the entrypoint, opens stdin
(kodev's control channel) and bind-mounts a kodev-owned directory read-only at /kodev, exactly as for the
containers kodev creates itself (kodev/deliver/swap.py). The directory belongs to the project and service,
not to one container: Compose may recreate or keep containers across kodev sessions, and a stopped
project must still start. A swapped binary in it is cleared whenever the container is to run its image's
own binary again (session start, a recreate).

Only when the daemon sees this machine's files (mount mode): there is no moment between Compose creating
and starting a container for kodev to copy the supervisor in. Services whose compose file sets their
`entrypoint`, `tty` or `stdin_open` keep theirs and are recreated through Compose.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kodev.compose import ComposeProject
from kodev.deliver.supervision import MOUNT_POINT, SUPERVISOR, ControlChannel, Supervision, place_binary

log = logging.getLogger(__name__)

_OWN_SETTINGS = ("entrypoint", "tty", "stdin_open")  # a service that sets these keeps them: no swap


class ComposeSwap:
    """The swap side of one compose project: which services swap, their directories, their channels."""

    def __init__(self, supervision: Supervision, client: Any, apps: Mapping[str, str]) -> None:
        self.supervision = supervision
        self.client = client
        self.apps = dict(apps)  # service -> the command's binary name
        self.directories: dict[str, Path] = {}  # the services that swap (known after `prepare`)
        self.channels: dict[str, ControlChannel] = {}

    def prepare(self, project: ComposeProject, image: str) -> dict[str, dict[str, Any]]:
        """Decide which services swap (the probe needs a built `image`) and make their directories; the
        override's extra keys for them."""
        kit = self.supervision.kit(image)
        self.directories.clear()
        if kit.mode != "mount":
            log.debug("compose services are recreated: the daemon cannot see this machine's files")
            return {}
        extras: dict[str, dict[str, Any]] = {}
        services = project.model.get("services") or {}
        for service, app in sorted(self.apps.items()):
            own = [key for key in _OWN_SETTINGS if (services.get(service) or {}).get(key)]
            if own:
                log.debug("%s sets %s in its compose file: recreated, not swapped", service, ", ".join(own))
                continue
            directory = _directory(kit.root, project, service)
            _place_supervisor(kit.supervisor, directory)
            (directory / app).unlink(missing_ok=True)  # a previous session's swap: the image is newer
            self.directories[service] = directory
            extras[service] = {
                "entrypoint": kit.entrypoint(app), "stdin_open": True, "cap_add": list(kit.CAPABILITIES),
                "volumes": [{"type": "bind", "source": str(directory), "target": MOUNT_POINT, "read_only": True}]}
        return extras

    def swaps(self, service: str) -> bool:
        return service in self.directories and service in self.channels

    def attach(self, service: str, container_id: str | None) -> None:
        """Open the control channel of the service's (new) container."""
        old = self.channels.pop(service, None)
        if old is not None:
            old.close()
        if container_id is not None and service in self.directories:
            try:
                self.channels[service] = ControlChannel(self.client, container_id)
            except Exception as exc:  # gone already: the next change recreates it
                log.debug("cannot attach to %s: %s", service, exc)

    def swap_in(self, service: str, binary: Path) -> None:
        """Put `binary` in front of the service's app and have its supervisor restart it."""
        place_binary(binary, self.directories[service], self.apps[service])
        self.channels[service].restart()

    def unswap(self, service: str) -> None:
        """Before Compose recreates the service: its new container runs the image's own binary."""
        if service in self.directories:
            (self.directories[service] / self.apps[service]).unlink(missing_ok=True)

    def close(self) -> None:
        """kodev is stopping: the channels close (the apps keep running)."""
        for channel in self.channels.values():
            channel.close()
        self.channels.clear()

    def remove_directories(self) -> None:
        """The project was taken down: nothing mounts the directories any more. (A stopped project keeps
        them: its containers mount them when they start again.)"""
        for directory in self.directories.values():
            shutil.rmtree(directory, ignore_errors=True)


def _directory(root: Path, project: ComposeProject, service: str) -> Path:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)  # no other local user may put a binary where a container execs it
    key = hashlib.sha256(f"{project.name}\0{project.workdir}".encode()).hexdigest()[:12]
    directory = root / "compose" / f"{project.name}.{key}" / service  # never NAME-PID-NS: not a stale one
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    return directory


def _place_supervisor(supervisor: Path, directory: Path) -> None:
    """A fresh copy, renamed into place: a running container's supervisor keeps its own file."""
    handle, partial = tempfile.mkstemp(prefix=".supervisor-", dir=directory)
    os.close(handle)
    shutil.copyfile(supervisor, partial)
    os.chmod(partial, 0o555)
    os.replace(partial, directory / SUPERVISOR)

