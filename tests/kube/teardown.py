"""Stopping a test cluster whole: its processes, its containers (which run in sessions of their own under
containerd's shims), the mounts the kubelet and containerd made, and the cgroups the kubelet made. Used by
the fixture, and by `scripts/cluster down` for a cluster left by a run that was killed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

_CGROUPS = Path("/sys/fs/cgroup")


def cgroup_root(workdir: Path) -> str:
    """The cgroup the kubelet puts its pods under: one per cluster, so two never share /kubepods."""
    return "kodev-test-" + hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:10]


def _hierarchies() -> list[Path]:
    """cgroup v1's controller hierarchies (these machines), or the one v2 hierarchy."""
    if (_CGROUPS / "cgroup.controllers").exists():
        return [_CGROUPS]
    return [path for path in _CGROUPS.iterdir() if path.is_dir() and not path.is_symlink()
            and path.name != "unified"]


def make_cgroup_root(workdir: Path) -> None:
    """Create the kubelet's cgroup root in every hierarchy (the kubelet requires it to exist); cpuset's needs
    its CPUs and memory nodes before anything can join it."""
    name = cgroup_root(workdir)
    for hierarchy in _hierarchies():
        (hierarchy / name).mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / setting).exists():
                (hierarchy / name / setting).write_text((hierarchy / setting).read_text())


def _cgroup_pids(workdir: Path) -> set[int]:
    found: set[int] = set()
    for hierarchy in _hierarchies():
        for procs in (hierarchy / cgroup_root(workdir)).rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(pid) for pid in procs.read_text().split())
    return found


def _named(workdir: Path) -> set[int]:
    """Processes whose command line names the work directory: containerd's shims, and anything else of the
    cluster's that left its process group."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if str(workdir).encode() in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
    return found


def _kill(pids: set[int], signum: int, groups: bool = False) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum) if groups else os.kill(pid, signum)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
                alive.add(pid)
    return alive


def _until_gone(pids_of: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pids_of()):  # type: ignore[operator]
        time.sleep(0.1)


def stop_directory(workdir: Path, leaders: list[int]) -> None:
    """End the cluster in `workdir`: `leaders` are its process-group leaders, in the order they started."""
    workdir = workdir.resolve()
    groups = set(leaders)
    for pid in reversed(leaders):  # the kubelet first: it must not restart what is being stopped
        _kill({pid}, signal.SIGTERM, groups=True)
    _until_gone(lambda: groups, 10)
    _kill(groups, signal.SIGKILL, groups=True)
    for _ in range(50):  # the containers: whatever is in the kubelet's cgroups, then the shims
        left = _alive(_cgroup_pids(workdir) | _named(workdir))
        if not left:
            break
        _kill(left, signal.SIGKILL)
        time.sleep(0.1)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(workdir))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for hierarchy in _hierarchies():
        root = hierarchy / cgroup_root(workdir)
        if root.is_dir():
            for cgroup in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                 reverse=True):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
