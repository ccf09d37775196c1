"""Who a container's processes run as, numerically: its `User` resolved as runc resolves it, against the
container's own /etc/passwd and /etc/group (a name means nothing on this machine, nor to dockerd, whose
`copyUIDGID` looks names up in the host's database)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import Any

from kodev.containers import ContainerError


@dataclass(frozen=True)
class ContainerUser:
    uid: int
    gid: int


def container_user(client: Any, container_id: str) -> ContainerUser:
    """The uid and gid of a created container's user (`user`, `uid`, `user:group`, `uid:gid`; empty is root)."""
    user = client.api.inspect_container(container_id)["Config"].get("User") or ""
    name, _, group = user.partition(":")
    passwd = _entries(client, container_id, "/etc/passwd") if name and not (name.isdigit() and group.isdigit()) else []
    if not name:
        uid, gid = 0, 0
    elif name.isdigit():
        uid = int(name)
        gid = next((int(e[3]) for e in passwd if len(e) > 3 and e[2] == name and e[3].isdigit()), 0)
    else:
        found = next((e for e in passwd if e[0] == name and len(e) > 3 and e[2].isdigit() and e[3].isdigit()), None)
        if found is None:
            raise ContainerError(f"the container's user {name!r} is not in its /etc/passwd: set `user` to a "
                                 "numeric uid (as in `65532` or `65532:65532`), or use --no-swap")
        uid, gid = int(found[2]), int(found[3])
    if group.isdigit():
        gid = int(group)
    elif group:
        groups = _entries(client, container_id, "/etc/group")
        gid_text = next((e[2] for e in groups if e[0] == group and len(e) > 2 and e[2].isdigit()), None)
        if gid_text is None:
            raise ContainerError(f"the container's group {group!r} is not in its /etc/group: set `user` to "
                                 "a numeric uid:gid, or use --no-swap")
        gid = int(gid_text)
    return ContainerUser(uid, gid)


def _entries(client: Any, container_id: str, path: str) -> list[list[str]]:
    """The colon-separated lines of a file in the container; none if it has no such file."""
    import docker.errors

    try:
        stream, _stat = client.api.get_archive(container_id, path)
    except docker.errors.NotFound:
        return []
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.next()
        extracted = archive.extractfile(member) if member is not None else None
        text = extracted.read().decode(errors="replace") if extracted is not None else ""
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
