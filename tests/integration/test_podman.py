"""kodev against Podman's Docker-compatible API: `build` (full archives), `run` on the host network, and a
short `watch` with one edit that is served.

Podman (Debian's `podman` package, installed here with apt-get when missing) runs as
`podman system service` on a private socket with private storage (root, runroot, tmpdir), so it touches
nothing of the machine's own containers. What it needs on these machines, in this set-up only:
- `default_ulimits`: its defaults cannot be raised here (`error setting rlimit type 7: operation not
  permitted`), so a CONTAINERS_CONF sets limits within the machine's;
- the cgroupfs cgroup manager and the file events logger (there is no systemd or journald);
- the host network namespace by default (no bridge, no iptables changes), and kodev's tests use host
  networking anyway.
Under KODEV_REQUIRE_REAL=1 a Podman that cannot be installed or started fails the tests.
What kodev did is read from its `--json` events (the versioned schema), never from its human text.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.examples import copy_example
from tests.integration.conftest import _missing, run_kodev
from tests.integration.json_events import Event, Events, finished
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored, wait_for_page, wait_until
from tests.integration.refusals import Refusals

CONTAINERS_CONF = '''[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
cgroupns = "host"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"

[network]
network_config_dir = "{root}/networks"
'''
GREETING = "internal/greeting/greeting.go"


def _apt_install_podman() -> str:
    """Install Debian's podman with apt-get (root only); its path, or why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "no `podman` on PATH, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "podman"]):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return f"`{' '.join(args)}` failed: {(done.stderr or done.stdout)[-1500:]}"
    return shutil.which("podman") or "apt-get installed podman, but there is no `podman` on PATH"


@pytest.fixture(scope="session")
def podman_binary() -> str:
    found = shutil.which("podman") or _apt_install_podman()
    if not found.startswith("/"):
        _missing(f"Podman ({found})")
    return found


def _unmount_under(root: Path) -> None:
    """Podman bind-mounts its overlay directory onto itself; undo what it left under `root`."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@pytest.fixture(scope="session")
def podman_host(podman_binary: str) -> Iterator[str]:
    """`podman system service` on a private socket; its DOCKER_HOST. Stopped and removed afterwards."""
    import docker

    root = Path(tempfile.mkdtemp(prefix="kodev-podman-", dir="/tmp"))  # short: a socket path has a limit
    conf = root / "containers.conf"
    conf.write_text(CONTAINERS_CONF.format(root=root))
    socket = root / "podman.sock"
    log = (root / "service.log").open("w")
    service = subprocess.Popen(
        [podman_binary, "--root", str(root / "storage"), "--runroot", str(root / "run"), "--tmpdir",
         str(root / "tmp"), "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend",
         "file", "system", "service", "--time=0", f"unix://{socket}"],
        env={**os.environ, "CONTAINERS_CONF": str(conf)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    host = f"unix://{socket}"

    def answers() -> bool:
        if service.poll() is not None:
            return True  # exited: reported below
        try:
            client = docker.DockerClient(base_url=host, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # not listening yet
            return False

    try:
        wait_until(answers, 60, lambda: f"podman system service did not answer:\n{(root / 'service.log').read_text()}")
        if service.poll() is not None:
            _missing(f"a running Podman service (it exited: {(root / 'service.log').read_text()[-2000:]})")
        yield host
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def podman(podman_host: str) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=podman_host, timeout=60)
    yield client
    client.close()


@pytest.fixture
def module(tmp_path: Path, go_binary: str) -> Path:
    """examples/hello as committed: README's Quick start edits to the working tree never reach it."""
    return copy_example("hello", tmp_path / "hello")


def _published(args: list[str], cwd: Path, host: str) -> Event:
    """`kodev build --json ARGS` against `host`: its one `image.published` event."""
    done = finished(run_kodev(["build", "--json", *args], cwd, env={"DOCKER_HOST": host}))
    assert done.returncode == 0, done.output()
    [published] = done.all("image.published")
    return published


def test_build_sends_full_archives(podman_host: str, podman: Any, module: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from kodev.daemon import connect
    from kodev.publish.daemon import DaemonPublisher

    monkeypatch.setenv("DOCKER_HOST", podman_host)
    daemon = connect()
    # Detected from the version's components: slim loads are never tried.
    assert DaemonPublisher(daemon).store() == "podman"
    daemon.client.close()

    repo = f"kodev.test/{uuid.uuid4().hex[:12]}"
    (module / "kodev.toml").write_text(f'repo = "{repo}"\n')
    first = _published(["./cmd/server"], module, podman_host)
    assert first["ref"] == f"{repo}/server:latest", first
    # The same build again: against Docker's classic store only the missing layers (none) would go;
    # Podman gets the whole archive every time.
    again = _published(["./cmd/server"], module, podman_host)
    assert not first["slim"] and not again["slim"], (first, again)
    assert again["bytes_sent"] == first["bytes_sent"] >= 1_000_000, (first, again)
    labels = podman.api.inspect_image(f"{repo}/server:latest")["Config"]["Labels"]
    assert labels["dev.kodev.command"] == "example.com/hello/cmd/server"


def test_run_on_the_host_network(podman_host: str, podman: Any, module: Path) -> None:
    port, name = free_port(), f"pod-{uuid.uuid4().hex[:8]}"
    (module / "kodev.toml").write_text(f'repo = "kodev.test/{uuid.uuid4().hex[:12]}"\n')
    with sigint_not_ignored():
        proc = KodevProcess(["run", "./cmd/server", "--name", name, "--network", "host", "--stop-timeout", "3",
                             "--", "-addr", f"127.0.0.1:{port}"], module, env={"DOCKER_HOST": podman_host})
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=120)
        assert len(podman.containers.list(filters={"name": name})) == 1
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert podman.containers.list(all=True, filters={"name": name}) == [], proc.output()
    finally:
        proc.kill()
        for container in podman.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def test_watch_serves_an_edit(podman_host: str, podman: Any, module: Path) -> None:
    port, service = free_port(), f"podw-{uuid.uuid4().hex[:8]}"
    (module / "kodev.toml").write_text(
        f'repo = "kodev.test/{uuid.uuid4().hex[:12]}"\n\n[services.{service}]\ncommand = "./cmd/server"\n'
        f'args = ["-addr", "127.0.0.1:{port}"]\nnetwork = "host"\nstop_timeout = 3\n')
    url = f"http://127.0.0.1:{port}/"
    with sigint_not_ignored():
        proc = KodevProcess(["watch", "--json"], module, env={"DOCKER_HOST": podman_host})
    events = Events(proc)
    try:
        events.wait("watching", timeout=120)
        wait_for_page(url, "Hello, kodev!", timeout=30)
        old = podman.containers.list(filters={"label": f"dev.kodev.service={service}"})[0].id
        greeting = module / GREETING
        mark = events.mark()
        with Refusals(port) as client:
            greeting.write_text(greeting.read_text().replace('"Hello, "', '"Howdy, "'))
            started = time.monotonic()
            wait_for_page(url, "Howdy, kodev!", timeout=90)
            print(f"podman: edit to serving {time.monotonic() - started:.2f}s")  # reported with -s, not asserted
            wait_until(lambda: client.answered("Howdy, kodev!"), 30)
        assert client.refused == 0, proc.output()  # the supervisor held the app's socket (Podman's profile too)
        # kodev's default: the binary is swapped into the running container (Podman runs the supervisor too)
        result = events.wait("command.result", mark, lambda e: e["outcome"] == "rebuilt", timeout=90)
        assert result["command"] == "server" and [d["how"] for d in result["delivered"]] == ["swapped"], result
        assert podman.containers.list(filters={"label": f"dev.kodev.service={service}"})[0].id == old
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert events.wait("exit", timeout=10)["code"] == 0 and events.fatal() == [], proc.output()
        assert "Traceback" not in proc.output(), proc.output()
        assert podman.containers.list(all=True, filters={"label": f"dev.kodev.service={service}"}) == []
    finally:
        proc.kill()
        for container in podman.containers.list(all=True, filters={"label": f"dev.kodev.service={service}"}):
            container.remove(force=True)
