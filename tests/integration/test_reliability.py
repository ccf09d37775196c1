"""kodev under faults, storms, signals, big inputs and bad input (issue 6): real Go, real dockerd.

Every test works on its own copy of examples/hello whose module path is renamed to example.com/r<uid>, so
the images kodev builds (labelled dev.kodev.command=<import path>) and the containers it runs (named
rel-<uid>-...) are this test's alone, even with other sessions on the same daemon; all are removed
afterwards. Tests that inspect kodev's cache give kodev a cache directory of their own. The daemon tests
never touch the shared dockerd: they start a private one (vfs storage, no bridge, no iptables) for this
module and stop and start it at will.

kodev runs with its defaults (binary-only changes swapped in place); the scenarios whose course differs when
containers are recreated instead (the daemon going away, storms, signals during a recreate, config reloads)
take the `delivery` fixture and run under both.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REQUIRE_REAL, run_kodev
from tests.integration.modules import (
    AS_ROOT,
    OWNER_PID,
    SETTLE,
    Module,
    alive,
    assert_cache_clean,
    clean_daemon,
    cpu_seconds,
    get,
    server_service,
    set_greeting,
    start_kodev,
    write,
)
from tests.integration.private_daemon import PrivateDaemon
from tests.integration.process import KodevProcess, fetch, free_port, wait_for_page, wait_until

# --- kodev processes -------------------------------------------------------------------------------------

@dataclass
class Watch:
    """One running `kodev watch` with a server service on `port` (host network)."""

    proc: KodevProcess
    module: Module
    server: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.proc.process.pid

    def rebuilt(self, command: str = "server") -> list[str]:
        return [line for line in self.proc.err_lines() if re.search(rf"^\s+{command}\s+rebuilt in ", line)]

    def wait_rebuilt(self, count: int, command: str = "server", timeout: float = 90) -> None:
        self.proc.wait_for(rf"^\s+{command}\s+rebuilt in ", count=count, timeout=timeout)

    def page(self, text: str, timeout: float = 60) -> str:
        try:
            return wait_for_page(self.url, text, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.proc.output()}") from None

    def containers(self) -> list[dict[str, Any]]:
        return list(self.module.client.api.containers(
            all=True, filters={"label": f"dev.kodev.service={self.server}"}))

    def container_id(self) -> str:
        """The one container of the server service (waits until there is exactly one)."""
        found: list[dict[str, Any]] = []

        def one() -> bool:
            found[:] = self.containers()
            return len(found) == 1

        wait_until(one, 30, lambda: f"expected one container for {self.server}, got {found}\n{self.proc.output()}")
        return str(found[0]["Id"])

    def owned(self) -> list[dict[str, Any]]:
        return list(self.module.client.api.containers(all=True, filters={"label": f"{OWNER_PID}={self.pid}"}))


@contextlib.contextmanager
def watching(module: Module, *, env: dict[str, str] | None = None, go: str | None = None, extra: str = "",
             stop_timeout: int = 3, started: bool = True, user: str | None = None) -> Iterator[Watch]:
    """`kodev watch` with one server service; with `started`, waits until it serves. Killed afterwards."""
    server, port = module.name("srv"), free_port()
    write(module.path / "kodev.toml",
          f'repo = "{module.repo}"\n' + server_service(server, port, stop_timeout, user=user) + extra)
    proc = start_kodev(module, ["watch", *(["--go", go] if go else [])], env)
    session = Watch(proc, module, server, port)
    try:
        if started:
            proc.wait_for(r"^watching ", timeout=120)
            session.page("Hello, kodev!", timeout=30)
        yield session
        assert "Traceback" not in proc.output(), proc.output()
    finally:
        proc.kill()


def stop_cleanly(session: Watch, sig: int = signal.SIGINT, timeout: float = 60) -> None:
    """Stop kodev with `sig`: exit 0, no container of it left, no traceback."""
    code = session.proc.stop(sig, timeout=timeout)
    assert code == 0, f"exit code {code} after {signal.Signals(sig).name}\n{session.proc.output()}"
    assert not session.owned(), f"left behind: {session.owned()}\n{session.proc.output()}"
    assert "Traceback" not in session.proc.output(), session.proc.output()


# --- the daemon goes away and comes back -------------------------------------------------------------------

NOT_ANSWERING = r"^warning: the Docker daemon at .* is not answering"


def test_kodata_is_readable_by_the_default_user_on_a_vfs_daemon(private_mod: Module,
                                                               private_daemon: PrivateDaemon) -> None:
    """ko writes /var and /var/run into the kodata layer; without them, daemons that unpack layers one by
    one (vfs, btrfs, zfs, ...) create the missing parents with mode 0600 and user 65532 cannot reach
    /var/run/ko."""
    done = run_kodev(["build", "./cmd/server"], private_mod.path, {"DOCKER_HOST": private_daemon.host}, timeout=120)
    assert done.returncode == 0, done.stderr
    port = free_port()
    container = private_daemon.client.containers.run(
        f"{private_mod.repo}/server:latest", ["-addr", f"127.0.0.1:{port}"], detach=True, network_mode="host",
        name=private_mod.name("vfs"))
    try:
        wait_until(lambda: fetch(f"http://127.0.0.1:{port}/healthz") == "ok\n", 30, "the server never answered")
        status, body = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "Hello, kodev!" in body, f"GET / as user 65532 on a vfs daemon: {status} {body!r}"
    finally:
        container.remove(force=True)


def away_and_back(s: Watch, daemon: PrivateDaemon, noticed_by_a_build: bool) -> None:
    """Stop the daemon under a serving `kodev watch`, check how kodev waits, start it again, check the return."""
    module = s.module
    first = s.container_id()
    daemon.stop()
    if noticed_by_a_build:
        set_greeting(module, "While away")  # the build's load fails: kodev must notice the daemon is gone
    s.proc.wait_for(NOT_ANSWERING, timeout=60 if noticed_by_a_build else 20)
    assert fetch(s.url) is None, "the server still answers with its daemon stopped"
    if not noticed_by_a_build:
        set_greeting(module, "While away")  # a save while the daemon is gone: built when it is back

    # Waiting for the daemon must not spin: kodev's CPU time over 5 s.
    time.sleep(1)
    before = cpu_seconds(s.pid)
    time.sleep(5)
    used = cpu_seconds(s.pid) - before
    assert used < 0.5, f"kodev used {used:.2f}s of CPU in 5 s while waiting for the daemon\n{s.proc.output()}"
    assert s.proc.process.poll() is None, f"kodev exited without its daemon\n{s.proc.output()}"
    assert s.proc.count(NOT_ANSWERING) == 1, s.proc.output()

    daemon.start()
    module.client = daemon.client
    s.proc.wait_for(r"^the Docker daemon is back", timeout=60)
    s.page("While away, kodev!", timeout=60)
    assert s.proc.count(NOT_ANSWERING) == 1, f"said it more than once\n{s.proc.output()}"
    assert s.container_id() != first
    assert "Traceback" not in s.proc.output(), s.proc.output()

    set_greeting(module, "After the return")  # and the loop goes on as before
    s.page("After the return, kodev!", timeout=60)
    stop_cleanly(s)


def test_daemon_goes_away_and_comes_back(private_mod: Module, private_daemon: PrivateDaemon,
        delivery: str) -> None:
    with watching(private_mod, env={"DOCKER_HOST": private_daemon.host}, user=AS_ROOT) as s:
        away_and_back(s, private_daemon, noticed_by_a_build=False)


def test_daemon_gone_during_a_rebuild_is_waited_for(private_mod: Module, private_daemon: PrivateDaemon,
        delivery: str) -> None:
    with watching(private_mod, env={"DOCKER_HOST": private_daemon.host}, user=AS_ROOT) as s:
        away_and_back(s, private_daemon, noticed_by_a_build=True)


def test_quick_daemon_restart_then_the_service_comes_back(private_mod: Module, private_daemon: PrivateDaemon,
                                                         delivery: str) -> None:
    with watching(private_mod, env={"DOCKER_HOST": private_daemon.host}, user=AS_ROOT) as s:
        first = s.container_id()
        private_daemon.stop()  # the container stops with it
        private_daemon.start()
        private_mod.client = private_daemon.client
        # Brought back on reconnect, or at the latest by the next build.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: "Hello, kodev!" in (fetch(s.url) or ""), 10)
        set_greeting(private_mod, "After the restart")
        s.page("After the restart, kodev!", timeout=60)
        # The reconnect and the edit may each bring a build: let a replacement in flight finish, then one
        # container runs, and it serves the edit.
        wait_until(lambda: [c["State"] for c in s.containers()] == ["running"], 30,
                   lambda: f"{s.containers()}\n{s.proc.output()}")
        assert "After the restart, kodev!" in (fetch(s.url) or "")
        assert s.container_id() != first
        assert s.proc.process.poll() is None
        stop_cleanly(s)


def test_container_removed_behind_kodevs_back_is_recreated(mod: Module) -> None:
    with watching(mod) as s:
        first = s.container_id()
        mod.client.api.remove_container(first, force=True)  # as `docker rm -f` would
        try:
            s.page("Hello, kodev!", timeout=20)
        except AssertionError as exc:
            raise AssertionError(f"not recreated after `docker rm -f` of its container: {exc}") from None
        assert s.container_id() != first
        assert s.proc.process.poll() is None
        stop_cleanly(s)


# --- a crashing service ----------------------------------------------------------------------------------

CRASH = '''package main

import (
	"fmt"
	"os"
)

const crash = %s

func init() {
	if crash {
		fmt.Fprintln(os.Stderr, "starting up")
		fmt.Fprintln(os.Stderr, "crashing on purpose: exit 3")
		os.Exit(3)
	}
}
'''


def creations(client: Any, service: str, since: float) -> list[str]:
    """IDs of the containers created for `service` since `since` (docker events)."""
    events = client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                           filters={"type": "container", "event": "create", "label": f"dev.kodev.service={service}"})
    return [event["id"] for event in events]


def test_crashing_service_is_reported_once_and_started_by_the_next_good_build(mod: Module) -> None:
    write(mod.path / "cmd/server/crash.go", CRASH % "true")
    since = time.time() - 1
    with watching(mod, started=False) as s:
        s.proc.wait_for(rf"^warning: {s.server} exited with code 3\. Its last output: "
                        r"'crashing on purpose: exit 3'", timeout=120)
        time.sleep(5)  # a restart loop would create more containers meanwhile
        created = creations(mod.client, s.server, since)
        assert len(created) == 1, f"{len(created)} containers created for a crashing service\n{s.proc.output()}"
        assert len(s.containers()) == 1
        assert s.proc.count(r"exited with code 3") == 1, s.proc.output()
        assert s.proc.process.poll() is None

        write(mod.path / "cmd/server/crash.go", CRASH % "false")
        s.page("Hello, kodev!", timeout=60)
        assert len(creations(mod.client, s.server, since)) == 2
        assert [c["State"] for c in s.containers()] == ["running"]
        stop_cleanly(s)


# --- signals at every stage -------------------------------------------------------------------------------

SLOW_GO = '''#!/bin/sh
# `go`, but a `go build` waits first (while the file {marker} exists); records its pids.
if [ "$1" = build ] && [ -e "{marker}" ]; then
  echo $$ >> "{pids}"
  sleep 30 &
  echo $! >> "{pids}"
  wait $!
fi
exec "{go}" "$@"
'''


def slow_go(tmp_path: Path, go_binary: str) -> tuple[Path, Path, Path]:
    """A `go` wrapper that is slow to build while `marker` exists; (wrapper, marker, pid file)."""
    wrapper, marker, pids = tmp_path / "slowgo", tmp_path / "slow", tmp_path / "go.pids"
    wrapper.write_text(SLOW_GO.format(marker=marker, pids=pids, go=go_binary))
    wrapper.chmod(0o755)
    return wrapper, marker, pids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_go_build(mod: Module, tmp_path: Path, cache_dir: Path, go_binary: str, sig: int) -> None:
    wrapper, marker, pids = slow_go(tmp_path, go_binary)
    with watching(mod, env={"KODEV_CACHE_DIR": str(cache_dir)}, go=str(wrapper)) as s:
        marker.touch()
        set_greeting(mod, "Never built")
        wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30,
                   lambda: f"the slow go build never started\n{s.proc.output()}")
        stop_cleanly(s, sig)
        go_pids = [int(p) for p in pids.read_text().split()]
        assert not [p for p in go_pids if alive(p)], f"go build processes {go_pids} outlived kodev"
        assert not s.rebuilt(), s.proc.output()
        assert_cache_clean(cache_dir)


def layer_files(cache: Path) -> list[tuple[str, int]]:
    """(name, size) of every file in the layer cache, read while kodev may be renaming them."""
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir(cache / "layers") as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                found.append((entry.name, entry.stat().st_size))
    return found


@pytest.mark.parametrize(("stage", "sig"), [("layer", signal.SIGINT), ("load", signal.SIGINT),
                                           ("load", signal.SIGTERM)], ids=["layer-SIGINT", "load-SIGINT",
                                                                           "load-SIGTERM"])
def test_signal_while_writing_or_loading_a_big_layer(mod: Module, tmp_path: Path, cache_dir: Path,
                                                     stage: str, sig: int) -> None:
    size = 300 << 20
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:  # real bytes, not a hole: the layer must really be written
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            handle.write(block)
    try:
        with watching(mod, env={"KODEV_CACHE_DIR": str(cache_dir)}) as s:
            old = s.container_id()
            os.replace(big, mod.path / "cmd/server/kodata/big.bin")  # one event: a new kodata file

            def reached() -> bool:
                for name, length in layer_files(cache_dir):
                    if stage == "layer" and name.startswith(".tmp-") and length > (16 << 20):
                        return True
                    if stage == "load" and not name.startswith(".tmp-") and length >= size:
                        return True
                return False

            wait_until(reached, 60, lambda: f"never saw the {stage} stage\n{s.proc.output()}")
            stop_cleanly(s, sig)
            assert not s.rebuilt(), f"the signal came too late to test the {stage} stage\n{s.proc.output()}"
            assert_cache_clean(cache_dir)
            assert old not in {c["Id"] for c in mod.client.api.containers(all=True)}
    finally:
        big.unlink(missing_ok=True)
        (mod.path / "cmd/server/kodata/big.bin").unlink(missing_ok=True)


IGNORE_SIGTERM = '''package main

import (
	"os/signal"
	"syscall"
)

// A server slow to stop: `docker stop` has to wait for its timeout.
func init() { signal.Ignore(syscall.SIGTERM) }
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_container_recreate(mod: Module, cache_dir: Path, sig: int, delivery: str) -> None:
    """A signal while the old container is being stopped for its replacement. Swapping, a kodata change is
    what recreates; recreating (KODEV_SWAP=0), any change."""
    write(mod.path / "cmd/server/slowstop.go", IGNORE_SIGTERM)
    with watching(mod, env={"KODEV_CACHE_DIR": str(cache_dir)}, stop_timeout=4) as s:
        old = s.container_id()
        since = time.time() - 1
        if delivery == "swap":
            write(mod.path / "cmd/server/kodata/index.html", "<h1>Never served</h1>\n")
        else:
            set_greeting(mod, "Never served")

        def stopping() -> bool:  # kodev sent SIGTERM to the old container and waits for it
            events = mod.client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                                       filters={"type": "container", "event": "kill", "container": old})
            return any(e.get("Actor", {}).get("Attributes", {}).get("signal") == "15" for e in events)

        wait_until(stopping, 60, lambda: f"kodev never stopped the old container\n{s.proc.output()}")
        stop_cleanly(s, sig)
        assert not s.rebuilt(), s.proc.output()
        assert_cache_clean(cache_dir)
        assert fetch(s.url) is None


def test_sigkill_then_a_new_kodev_removes_only_the_dead_ones_containers(mod: Module) -> None:
    live_port, dead_port = free_port(), free_port()
    live = start_kodev(mod, ["run", "--network", "host", "--name", mod.name("live"), "./cmd/server", "--",
                             "-addr", f"127.0.0.1:{live_port}"])
    dead = start_kodev(mod, ["run", "--network", "host", "--name", mod.name("dead"), "./cmd/server", "--",
                             "-addr", f"127.0.0.1:{dead_port}"])
    try:
        for proc, port in ((live, live_port), (dead, dead_port)):
            try:
                wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=120)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{proc.output()}") from None
        live_container = mod.client.api.inspect_container(mod.name("live"))
        dead_container = mod.client.api.inspect_container(mod.name("dead"))
        dead.kill()  # SIGKILL: no cleanup

        done = run_kodev(["run", "--name", mod.name("next"), "./cmd/hello", "--", "-exit", "0"], mod.path,
                         timeout=120)
        assert done.returncode == 0, done.stderr
        # Any kodev starting on this shared daemon removes the dead one's container, so another test's may have
        # been first (that the one that removes it says so is checked on a daemon of its own: test_newcomer.py's
        # test_daemon_gone_at_cleanup_...). What matters here: the dead one's is gone, the live one's untouched.
        names = {c["Names"][0].lstrip("/") for c in mod.client.api.containers(all=True, filters={"name": mod.uid})}
        assert mod.name("dead") not in names, f"the dead kodev's container {dead_container['Id'][:12]} is left"
        assert mod.name("live") in names, f"the live kodev's container was removed:\n{done.stderr}"
        now = mod.client.api.inspect_container(mod.name("live"))
        assert now["Id"] == live_container["Id"]
        assert now["State"]["Running"] and now["State"]["StartedAt"] == live_container["State"]["StartedAt"]
        assert "Hello, kodev!" in (fetch(f"http://127.0.0.1:{live_port}/") or "")
        assert live.process.poll() is None, live.output()
        assert live.stop(signal.SIGINT, timeout=30) == 0, live.output()
        assert not mod.client.api.containers(all=True, filters={"name": mod.name("live")})
    finally:
        live.kill()
        dead.kill()


# --- disk ---------------------------------------------------------------------------------------------------

def layers_bytes(cache: Path) -> int:
    return sum(length for _, length in layer_files(cache))


def test_many_rebuilds_keep_images_and_cache_bounded_and_never_touch_foreign_images(
        mod: Module, cache_dir: Path) -> None:
    import io

    import docker.errors

    client = mod.client
    # An image kodev did not make, under the very tag kodev is about to use.
    tiny = io.BytesIO()
    with tarfile.open(fileobj=tiny, mode="w") as archive:
        info = tarfile.TarInfo("note.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    client.api.import_image_from_data(tiny.getvalue(), repository=f"{mod.repo}/server", tag="latest")
    foreign_image = client.api.inspect_image(f"{mod.repo}/server:latest")["Id"]
    sdk_port = free_port()
    sdk_container = None
    edits = 20
    try:
        with watching(mod, env={"KODEV_CACHE_DIR": str(cache_dir), "KODEV_CACHE_MAX_MB": "50"},
                      extra='\n[commands."./cmd/hello"]\n') as s:
            # A container made by plain `docker run` from kodev's image of the moment.
            first_image = client.api.inspect_image(f"{mod.repo}/server:latest")["Id"]
            sdk_container = client.containers.run(first_image, ["-addr", f"127.0.0.1:{sdk_port}"], detach=True,
                                                  network_mode="host", name=mod.name("sdk"))
            wait_for_page(f"http://127.0.0.1:{sdk_port}/", "Hello, kodev!", timeout=30)
            largest = 0
            for i in range(1, edits + 1):
                set_greeting(mod, f"Edit {i}")
                s.wait_rebuilt(i)
                largest = max(largest, layers_bytes(cache_dir))
                if i % 10 == 0:
                    for command in ("server", "hello"):
                        count = len(mod.images(command))
                        assert count <= 3, f"{count} {command} images after {i} rebuilds\n{s.proc.output()}"
            s.page(f"Edit {edits}, kodev!", timeout=30)
            s.wait_rebuilt(edits, command="hello")  # services go first: the image-only hello follows the server
            assert len(s.rebuilt("hello")) == edits, s.proc.output()
            assert largest < 60 << 20, f"the layer cache grew to {largest >> 20} MB with a 50 MB budget"
            stop_cleanly(s)
        for command in ("server", "hello"):
            assert len(mod.images(command)) <= 3, f"{command}: {mod.images(command)}"
        # Never touched: the imported image it took the tag from, the image a foreign container uses.
        assert client.api.inspect_image(foreign_image)["Id"] == foreign_image
        assert client.api.inspect_image(first_image)["Id"] == first_image
        sdk_container.reload()
        assert sdk_container.status == "running"
        assert "Hello, kodev!" in (fetch(f"http://127.0.0.1:{sdk_port}/") or "")
    finally:
        if sdk_container is not None:
            with contextlib.suppress(Exception):
                sdk_container.remove(force=True)
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(foreign_image, force=True)


# --- huge inputs ---------------------------------------------------------------------------------------------

def peak_rss_kb(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run kodev ARGS; its result and peak resident set size (kB), via /usr/bin/time or by polling VmHWM."""
    full_env = {**os.environ, **env}
    command = [sys.executable, "-m", "kodev", *args]
    if Path("/usr/bin/time").exists():
        done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=300, check=False)
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        assert found, done.stderr
        return done, int(found.group(1))
    process = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{process.pid}/status").read_text()
            found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if found:
                peak = max(peak, int(found.group(1)))
        time.sleep(0.05)
    out, err = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, out, err), peak


def test_one_gigabyte_kodata_file_is_streamed_not_held_in_memory(mod: Module, cache_dir: Path) -> None:
    huge = mod.path / "cmd/server/kodata/huge.bin"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)  # sparse, but kodev still reads, hashes, writes and sends every byte
    try:
        done, peak = peak_rss_kb(["build", "./cmd/server"], mod.path, {"KODEV_CACHE_DIR": str(cache_dir)})
        assert done.returncode == 0, done.stderr
        assert peak < 200 * 1024, f"peak RSS {peak // 1024} MB building with a 1 GB kodata file"
        image = mod.client.api.inspect_image(f"{mod.repo}/server:latest")
        assert image["Size"] >= 1 << 30, image["Size"]
    finally:
        huge.unlink(missing_ok=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
        clean_daemon(mod)


def test_kodata_tree_of_20000_files_builds(mod: Module, cache_dir: Path) -> None:
    many = mod.path / "cmd/server/kodata/many"
    for d in range(200):
        directory = many / f"d{d:03d}"
        directory.mkdir(parents=True)
        for f in range(100):
            (directory / f"f{f:03d}.txt").write_text(f"{d}/{f}\n")
    done = run_kodev(["build", "./cmd/server"], mod.path, {"KODEV_CACHE_DIR": str(cache_dir)}, timeout=180)
    assert done.returncode == 0, done.stderr
    layers = mod.client.api.inspect_image(f"{mod.repo}/server:latest")["RootFS"]["Layers"]
    kodata = cache_dir / "layers" / f"{layers[-2].removeprefix('sha256:')}.tar"
    with tarfile.open(kodata) as archive:
        names = [member.name for member in archive]
    files = [n for n in names if n.startswith("var/run/ko/many/") and n.endswith(".txt")]
    assert len(files) == 20000, len(files)
    assert "var/run/ko/many/d199/f099.txt" in names


# --- bad input in watch mode ----------------------------------------------------------------------------------

def test_broken_kodev_toml_and_go_mod_keep_the_last_good_state(mod: Module, delivery: str) -> None:
    with watching(mod) as s:
        old = s.container_id()
        config = mod.path / "kodev.toml"
        good = config.read_text()
        errors = s.proc.count(r"^error: ")

        config.write_text(good + "\n[services.broken\ncommand = \n")
        s.proc.wait_for(r"^error: .*kodev\.toml", count=1, timeout=30)
        # One paragraph: what is wrong, and that the last good file stays until the next save.
        s.proc.wait_for(r"^error: .*kodev keeps running with the last good kodev\.toml until you save one that "
                        r"works\.$", timeout=10)
        assert not any("run again" in line for line in s.proc.err_lines())
        assert s.container_id() == old
        assert "Hello, kodev!" in (fetch(s.url) or "")

        # The last good config still drives the builds.
        set_greeting(mod, "Still good")
        s.page("Still good, kodev!", timeout=60)
        serving = s.container_id()
        config.write_text(good)

        errors = s.proc.count(r"^error: ")
        go_mod = mod.path / "go.mod"
        good_mod = go_mod.read_text()
        go_mod.write_text(good_mod + "\nthis is not a go.mod directive\n")
        s.proc.wait_for(r"^error: ", count=errors + 1, timeout=60)
        assert "go.mod" in "\n".join(s.proc.err_lines()[-40:]), s.proc.output()
        time.sleep(1)
        assert s.container_id() == serving, "the old container was replaced after go.mod broke"
        assert "Still good, kodev!" in (fetch(s.url) or ""), "the old container stopped serving"
        assert s.proc.process.poll() is None

        go_mod.write_text(good_mod)
        set_greeting(mod, "Recovered")
        s.page("Recovered, kodev!", timeout=60)
        stop_cleanly(s)


def test_service_of_a_package_that_is_not_main_is_a_clear_error_at_start(mod: Module) -> None:
    write(mod.path / "kodev.toml", f'repo = "{mod.repo}"\n'
          + server_service(mod.name("lib"), free_port(), command="./internal/greeting"))
    done = run_kodev(["watch"], mod.path, timeout=90)
    assert done.returncode == 1, f"exit code {done.returncode}\n{done.stderr}"
    assert re.search(r"^error: .*internal/greeting.*package main", done.stderr, re.M | re.S), done.stderr
    assert "Traceback" not in done.stderr
    assert not mod.client.api.containers(all=True, filters={"name": mod.uid})


def test_kodata_that_is_a_file_is_a_clear_error_and_fixing_it_recovers(mod: Module) -> None:
    kodata = mod.path / "cmd/server/kodata"
    saved = mod.path.parent / "kodata-saved"
    shutil.move(kodata, saved)
    kodata.write_text("not a directory\n")

    done = run_kodev(["build", "./cmd/server"], mod.path, timeout=90)
    assert done.returncode == 1, done.stderr
    assert re.search(r"^error: .*cmd/server/kodata is not a directory", done.stderr, re.M), done.stderr
    assert "Traceback" not in done.stderr

    with watching(mod, started=False) as s:
        s.proc.wait_for(r"^error: .*cmd/server/kodata is not a directory", timeout=120)
        s.proc.wait_for(r"^watching ", timeout=30)
        assert s.proc.process.poll() is None, s.proc.output()
        assert fetch(s.url) is None
        # Make kodata a directory again, in one rename: that save must be built like any other.
        kodata.unlink()
        shutil.move(saved, kodata)
        try:
            s.page("Hello, kodev!", timeout=20)
        except AssertionError as exc:
            raise AssertionError(f"kodata became a directory again, but nothing was rebuilt: {exc}") from None


KILLING_GO = '''#!/bin/sh
# `go`, but a `go build` is killed by {signal} (as the out-of-memory killer would) while {marker} exists.
if [ "$1" = build ] && [ -e "{marker}" ]; then
  kill -{signal} $$
fi
exec "{go}" "$@"
'''


def test_go_killed_by_a_signal_is_reported_as_such(mod: Module, tmp_path: Path, go_binary: str) -> None:
    wrapper, marker = tmp_path / "killedgo", tmp_path / "kill"
    wrapper.write_text(KILLING_GO.format(signal="KILL", marker=marker, go=go_binary))
    wrapper.chmod(0o755)
    with watching(mod, go=str(wrapper)) as s:
        old = s.container_id()
        marker.touch()
        set_greeting(mod, "Killed")
        s.proc.wait_for(r"^error: go build of .* was killed by SIGKILL", timeout=60)
        assert "out-of-memory" in s.proc.output(), s.proc.output()
        assert s.container_id() == old
        assert "Hello, kodev!" in (fetch(s.url) or "")
        marker.unlink()
        set_greeting(mod, "Not killed")
        s.page("Not killed, kodev!", timeout=60)

    # `kodev build`, with another signal: named too, exit 1, no traceback.
    wrapper.write_text(KILLING_GO.format(signal="TERM", marker=marker, go=go_binary))
    marker.touch()
    done = run_kodev(["build", "--go", str(wrapper), "./cmd/hello"], mod.path, timeout=90)
    assert done.returncode == 1, done.stderr
    assert re.search(r"^error: go build of .*cmd/hello was killed by SIGTERM", done.stderr, re.M), done.stderr
    assert "Traceback" not in done.stderr
