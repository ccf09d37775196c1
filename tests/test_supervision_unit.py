"""What swapping keeps on disk: a killed kodev's swap directories are removed by the next one, no one else's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kodev.deliver.supervision import remove_stale


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_directories_of_a_dead_kodev_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"my-server-{_dead_pid()}-123"
    mine = tmp_path / f"server-{os.getpid()}-456"
    alive = tmp_path / f"server-{os.getppid()}-789"
    other = tmp_path / "probe-abc"
    for directory in (dead, mine, alive, other):
        directory.mkdir()
        (directory / "server").write_text("binary")
    assert remove_stale(tmp_path) == [dead]
    assert not dead.exists() and mine.exists() and alive.exists() and other.exists()


def test_no_directory_yet_is_nothing_to_do(tmp_path: Path) -> None:
    assert remove_stale(tmp_path / "swap") == []


def test_a_binary_being_staged_beside_the_directories_is_left_alone(tmp_path: Path) -> None:
    """place_binary stages `.NAME-PID-NS-APP.partial` in the swap root: another kodev's sweep must neither
    read a pid out of it nor touch it (it once read the nanoseconds as a pid: an OverflowError in os.kill)."""
    staged = tmp_path / f".web-{os.getpid()}-{10**15}-server.partial"
    staged.write_text("binary")
    huge = tmp_path / f"web-{10**15}-1"
    huge.mkdir()
    assert remove_stale(tmp_path) == []
    assert staged.exists() and huge.exists()
