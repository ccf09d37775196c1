"""kodev with a service that crashes, and under signals at every stage of a round (issue 6): real Go, real
dockerd.

A crashing service is said once (a `service.exited` event) and not restarted in a loop; a signal while
`go build` runs, while a big layer is written or loaded, or while the old container is being stopped ends
kodev cleanly: exit 0, no container of it, no `go` process, no half-written cache, no build reported. A
SIGKILLed kodev's containers are removed by the next kodev, and only its. Each test reads kodev's `--json`
events (tests/integration/json_events.py), never its human text.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.modules import (
    Module,
    alive,
    assert_cache_clean,
    layer_files,
    run_json,
    set_greeting,
    start_kodev,
    stop_cleanly,
    watching,
    write,
)
from tests.integration.process import fetch, free_port, wait_for_page, wait_until

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
        exited = s.events.wait("service.exited", timeout=120)
        assert exited["service"] == s.server and exited["code"] == 3, exited
        assert exited["last_lines"][-1:] == ["crashing on purpose: exit 3"], exited
        time.sleep(5)  # a restart loop would create more containers meanwhile
        created = creations(mod.client, s.server, since)
        assert len(created) == 1, f"{len(created)} containers created for a crashing service\n{s.proc.output()}"
        assert len(s.containers()) == 1
        assert s.events.count("service.exited") == 1, s.proc.output()
        assert s.proc.process.poll() is None

        write(mod.path / "cmd/server/crash.go", CRASH % "false")
        s.page("Hello, kodev!", timeout=60)
        assert len(creations(mod.client, s.server, since)) == 2
        assert [c["State"] for c in s.containers()] == ["running"]
        assert s.events.count("service.exited") == 1, s.proc.output()
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
        mark = s.events.mark()
        marker.touch()
        set_greeting(mod, "Never built")
        s.events.wait("build.started", mark, timeout=30)
        wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30,
                   lambda: f"the slow go build never started\n{s.proc.output()}")
        stop_cleanly(s, sig)
        go_pids = [int(p) for p in pids.read_text().split()]
        assert not [p for p in go_pids if alive(p)], f"go build processes {go_pids} outlived kodev"
        assert not s.rebuilt(), s.proc.output()
        assert_cache_clean(cache_dir)


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
    """A signal while the old container is being stopped for its replacement. Swapping, a kodata file
    removed is what recreates; recreating (KODEV_SWAP=0), any change."""
    write(mod.path / "cmd/server/slowstop.go", IGNORE_SIGTERM)
    with watching(mod, env={"KODEV_CACHE_DIR": str(cache_dir)}, stop_timeout=4) as s:
        old = s.container_id()
        since, mark = time.time() - 1, s.events.mark()
        if delivery == "swap":
            (mod.path / "cmd/server/kodata/static/site.css").unlink()
        else:
            set_greeting(mod, "Never served")

        def stopping() -> bool:  # kodev sent SIGTERM to the old container and waits for it
            events = mod.client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                                       filters={"type": "container", "event": "kill", "container": old})
            return any(e.get("Actor", {}).get("Attributes", {}).get("signal") == "15" for e in events)

        wait_until(stopping, 60, lambda: f"kodev never stopped the old container\n{s.proc.output()}")
        stop_cleanly(s, sig)
        assert not s.rebuilt(), s.proc.output()
        assert s.events.count("delivered", since=mark) == 0, s.proc.output()
        assert_cache_clean(cache_dir)
        assert fetch(s.url) is None


def test_sigkill_then_a_new_kodev_removes_only_the_dead_ones_containers(mod: Module) -> None:
    live_port, dead_port = free_port(), free_port()
    live = start_kodev(mod, ["run", "--json", "--network", "host", "--name", mod.name("live"), "./cmd/server",
                             "--", "-addr", f"127.0.0.1:{live_port}"])
    dead = start_kodev(mod, ["run", "--json", "--network", "host", "--name", mod.name("dead"), "./cmd/server",
                             "--", "-addr", f"127.0.0.1:{dead_port}"])
    try:
        for proc, port in ((live, live_port), (dead, dead_port)):
            try:
                wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=120)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{proc.output()}") from None
        live_container = mod.client.api.inspect_container(mod.name("live"))
        dead_container = mod.client.api.inspect_container(mod.name("dead"))
        dead.kill()  # SIGKILL: no cleanup

        done = run_json(["run", "--name", mod.name("next"), "./cmd/hello", "--", "-exit", "0"], mod.path,
                        timeout=120)
        assert done.returncode == 0, done.output()
        assert done.all("error") == [], done.output()
        # Any kodev starting on this shared daemon removes the dead one's container, so another test's may have
        # been first (that the one that removes it says so is checked on a daemon of its own: test_newcomer.py's
        # test_daemon_gone_at_cleanup_...). What matters here: the dead one's is gone, the live one's untouched.
        names = {c["Names"][0].lstrip("/") for c in mod.client.api.containers(all=True, filters={"name": mod.uid})}
        assert mod.name("dead") not in names, f"the dead kodev's container {dead_container['Id'][:12]} is left"
        assert mod.name("live") in names, f"the live kodev's container was removed:\n{done.output()}"
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
