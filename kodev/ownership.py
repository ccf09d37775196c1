"""Which kodev owns a container: the labels every container kodev makes carries, and reaping the orphans.

Every container carries labels naming its owner (host, pid, process start time, session). A later kodev
removes containers whose owner is dead, and refuses to touch anything it did not create.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANAGED_LABEL = "dev.kodev.managed"
SERVICE_LABEL = "dev.kodev.service"
SESSION_LABEL = "dev.kodev.session"
OWNER_HOST_LABEL = "dev.kodev.owner.host"
OWNER_PID_LABEL = "dev.kodev.owner.pid"
OWNER_START_LABEL = "dev.kodev.owner.start"
KEEP_LABEL = "dev.kodev.keep"  # restart = false: left as it is when kodev exits
NO_RM_LABEL = "dev.kodev.no-rm"  # kodev run --no-rm: kept after it exits on its own, for docker logs


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


def reap_orphans(client: Any, managed: list[dict[str, Any]]) -> list[str]:
    """Remove the `managed` containers (as the list endpoint gives them) whose kodev is no longer running
    (killed outright); their names. Kept ones (restart = false, --no-rm that exited) stay."""
    reaped = []
    for found in managed:
        labels = found.get("Labels") or {}
        if labels.get(KEEP_LABEL) == "true" or owner_alive(labels):
            continue
        if labels.get(NO_RM_LABEL) == "true" and found.get("State") == "exited":
            continue  # kept on purpose (--no-rm); replaced when its name is next used
        try:
            client.api.remove_container(found["Id"], force=True)
        except Exception as exc:  # removed meanwhile, or the daemon refuses: the next kodev tries again
            log.debug("could not remove orphan %s: %s", container_name(found), exc)
            continue
        reaped.append(container_name(found))
    return reaped


def container_name(listed: dict[str, Any]) -> str:
    names = listed.get("Names") or [listed.get("Id", "")[:12]]
    return str(names[0]).lstrip("/")
