"""Where else a Docker daemon may be, for the message kodev prints when the one it tried does not answer.

kodev reaches Docker exactly as the docker CLI does (DOCKER_HOST, else the docker context, else the
default socket) and never switches to another daemon on its own: images loaded into a daemon that `docker`
does not talk to would be invisible to the user's other tools. But scripts/try and scripts/test may have
started a private dockerd on a socket of its own; when one is there, the error names it and gives the
exact line that uses it.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DOCKERD_DIR = Path("/tmp/kodev-dockerd")  # where scripts/env.sh starts its dockerd by default


@dataclass(frozen=True)
class PrivateDaemon:
    """A socket where kodev's scripts start their dockerd, and whether something accepts connections on it."""

    socket: Path
    answers: bool

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"


def private_daemon_sockets() -> list[Path]:
    """The sockets scripts/env.sh uses: $KODEV_DOCKERD_DIR's, then the default one."""
    dirs = [Path(value)] if (value := os.environ.get("KODEV_DOCKERD_DIR")) else []
    dirs.append(DEFAULT_DOCKERD_DIR)
    return list(dict.fromkeys(d / "docker.sock" for d in dirs))


def _accepts(path: Path) -> bool:
    try:
        if not stat.S_ISSOCK(path.stat().st_mode):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            probe.connect(str(path))
        return True
    except OSError:
        return False


def _others(tried: str) -> list[Path]:
    return [path for path in private_daemon_sockets() if f"unix://{path}" not in tried]


def private_daemons(tried: str) -> list[PrivateDaemon]:
    """The private dockerd sockets that exist, other than the endpoint already tried."""
    return [PrivateDaemon(path, _accepts(path)) for path in _others(tried) if path.exists()]


def unreachable_hint(tried: str) -> str:
    """What to do when the daemon at `tried` does not answer: every place looked at, and a line to paste."""
    text = (f"Tried {tried}. Start Docker (e.g. `sudo systemctl start docker`, or `sudo dockerd &`), or point "
            "kodev at a running daemon with DOCKER_HOST or `docker context use NAME`.")
    found = private_daemons(tried)
    answering = [daemon for daemon in found if daemon.answers]
    if answering:
        where = " and ".join(str(daemon.socket) for daemon in answering)
        text += (f" A private dockerd that kodev's scripts started answers at {where}: use it in this shell "
                 f"with `export DOCKER_HOST={answering[0].host}` (or `. scripts/env.sh` in kodev's repository).")
    for daemon in found:
        if not daemon.answers:
            text += (f" A private dockerd of kodev's scripts left its socket at {daemon.socket}, but it does not "
                     "answer: scripts/try or scripts/test start it again.")
    if not found and _others(tried):
        places = " or ".join(str(path) for path in _others(tried))
        text += f" No private dockerd of kodev's scripts either (looked at {places})."
    return text
