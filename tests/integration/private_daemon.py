"""A dockerd of a test's own, on a short unix socket path (overlay2 storage as the shared one, or vfs where a
test is about vfs; no bridge, no iptables rules), that the test stops and starts at will: the daemon tests
never touch the shared one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REQUIRE_REAL
from tests.integration.process import wait_until


class PrivateDaemon:
    """A dockerd of this module's own on a short unix socket path, stopped and started by the tests."""

    def __init__(self, root: Path, storage: str = "overlay2") -> None:
        self.root = root
        self.storage = storage
        self.socket = root / "d.sock"
        self.host = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "dockerd is running already"
        with open(self.root / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(
                ["dockerd", "--host", self.host, "--data-root", str(self.root / "data"),
                 "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "d.pid"),
                 "--bridge=none", "--iptables=false", "--ip6tables=false", "--storage-driver", self.storage],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._client = None
        wait_until(self._answers, 60, lambda: f"private dockerd did not come up:\n{self.log()}")

    def _answers(self) -> bool:
        import docker

        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"private dockerd exited with {self.process.returncode}:\n{self.log()}")
        try:
            client = docker.DockerClient(base_url=self.host, timeout=30)
            client.ping()
        except Exception:
            return False
        self._client = client
        return True

    @property
    def client(self) -> Any:
        assert self._client is not None, "the private dockerd is not running"
        return self._client

    def stop(self) -> None:
        """SIGTERM, and wait until dockerd (and its containerd) are gone."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        wait_until(lambda: not self.socket.exists() or not self._socket_answers(), 30, "dockerd socket lingers")

    def _socket_answers(self) -> bool:
        import socket

        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def remove_all_images(self) -> None:
        import docker.errors

        for image in self.client.api.images(all=True):
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.remove_image(image["Id"], force=True)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "dockerd.log").read_text()[-3000:]
        return ""


@contextlib.contextmanager
def private_dockerd(prefix: str, tmpfs_mb: int | None = None, storage: str = "overlay2") -> Iterator[PrivateDaemon]:
    """A started private dockerd under /tmp/PREFIX… (unix socket paths must stay short), stopped and removed
    afterwards. `tmpfs_mb`: its storage is a tmpfs of that size, so that a load that does not fit is refused
    for real (no space left on device). `storage`: its storage driver (vfs copies every layer and every
    container's root file system in full: only for tests about vfs)."""
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        if REQUIRE_REAL:
            pytest.fail("the daemon tests need dockerd and root to start a private dockerd", pytrace=False)
        pytest.skip("dockerd (as root) not available for a private daemon")
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if tmpfs_mb is not None:
        (root / "data").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mb}m", "tmpfs", str(root / "data")], check=True)
    daemon = PrivateDaemon(root, storage)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        # overlay2 layers and a container's shm may be left mounted if dockerd died hard
        with contextlib.suppress(OSError):
            for line in reversed(Path("/proc/mounts").read_text().splitlines()):
                point = line.split()[1]
                if point.startswith(str(root) + "/"):
                    subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
