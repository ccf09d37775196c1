"""kodev when the Docker daemon goes away under it (issue 6): real Go, a real dockerd of this file's own.

The daemon tests never touch the shared dockerd: they start a private one (vfs storage, no bridge, no
iptables) for this module and stop and start it at will (the `private_daemon` and `private_mod` fixtures).
Each test reads kodev's `--json` events (tests/integration/json_events.py), never its human text. The
scenarios whose course differs when containers are recreated instead of swapped take the `delivery`
fixture and run under both.

The rest of issue 6 is in test_crash_and_signals.py (a crashing service, signals at every stage),
test_disk_and_huge_inputs.py (bounded disk, huge kodata) and test_broken_input.py (bad input in watch mode).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from tests.integration.modules import (
    AS_ROOT,
    Module,
    Watch,
    cpu_seconds,
    get,
    make_module,
    run_json,
    set_greeting,
    stop_cleanly,
    watching,
)
from tests.integration.private_daemon import PrivateDaemon, private_dockerd
from tests.integration.process import fetch, free_port, wait_until


def test_kodata_is_readable_by_the_default_user_on_a_vfs_daemon(hello: Path) -> None:
    """ko writes /var and /var/run into the kodata layer; without them, daemons that unpack layers one by
    one (vfs, btrfs, zfs, ...) create the missing parents with mode 0600 and user 65532 cannot reach
    /var/run/ko."""
    with private_dockerd("kv-", storage="vfs") as daemon:
        module = make_module(hello, daemon.client)
        done = run_json(["build", "./cmd/server"], module.path, {"DOCKER_HOST": daemon.host}, timeout=120)
        assert done.returncode == 0, done.output()
        port = free_port()
        container = daemon.client.containers.run(
            f"{module.repo}/server:latest", ["-addr", f"127.0.0.1:{port}"], detach=True, network_mode="host",
            name=module.name("vfs"))
        try:
            wait_until(lambda: fetch(f"http://127.0.0.1:{port}/healthz") == "ok\n", 30, "the server never answered")
            status, body = get(f"http://127.0.0.1:{port}/")
            assert status == 200 and "Hello, kodev!" in body, f"GET / as user 65532 on a vfs daemon: {status} {body!r}"
        finally:
            container.remove(force=True)


# --- the daemon goes away and comes back -------------------------------------------------------------------

def away_and_back(s: Watch, daemon: PrivateDaemon, noticed_by_a_build: bool) -> None:
    """Stop the daemon under a serving `kodev watch`, check how kodev waits, start it again, check the return."""
    module = s.module
    first = s.container_id()
    mark = s.events.mark()
    daemon.stop()
    if noticed_by_a_build:
        set_greeting(module, "While away")  # the build's load fails: kodev must notice the daemon is gone
    lost = s.events.wait("daemon.lost", mark, timeout=60 if noticed_by_a_build else 20)
    assert daemon.host in lost["endpoint"], lost  # the daemon it talks to, named
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
    assert s.events.count("daemon.lost", since=mark) == 1, s.proc.output()
    assert s.events.count("daemon.back", since=mark) == 0, s.proc.output()

    daemon.start()
    module.client = daemon.client
    s.events.wait("daemon.back", mark, timeout=60)
    s.page("While away, kodev!", timeout=60)
    assert s.events.count("daemon.lost", since=mark) == 1, f"said it more than once\n{s.proc.output()}"
    assert s.container_id() != first
    assert s.events.fatal() == [], s.proc.output()
    s.assert_no_traceback()

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
        assert s.events.fatal() == [], s.proc.output()
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
