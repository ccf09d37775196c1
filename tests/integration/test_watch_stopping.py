"""`kodev watch --json` end to end, stopping and names: SIGINT and SIGTERM remove what kodev started (not a
`restart = false` service), a SIGKILLed kodev's container is removed by the next, a name a foreign container
holds is a clear error; and the one human-output check here, the service prefixes of the multiplexed logs.
examples/hello, real `go`, real dockerd, read through kodev's events (tests/integration/watch_support.py)."""

from __future__ import annotations

import contextlib
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.process import KodevProcess, fetch, free_port, wait_for_page
from tests.integration.run_support import kodev_build
from tests.integration.watch_support import (
    assert_delivered,
    container_id,
    containers,
    image_id,
    set_greeting,
    watching,
    write,
)


def _assert_all_removed(client: Any, proc: KodevProcess, services: list[str]) -> None:
    owned = client.containers.list(all=True, filters={"label": f"dev.kodev.owner.pid={proc.process.pid}"},
                                   ignore_removed=True)
    assert not owned, f"left behind: {[c.name for c in owned]}\n{proc.output()}"
    for service in services:
        assert not containers(client, service), f"{service} left behind\n{proc.output()}"


def test_sigint_stops_and_removes_everything(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        assert containers(docker_client, s.server) and containers(docker_client, s.hello)
        code = s.proc.stop(signal.SIGINT, timeout=30)
        assert code == 0, s.proc.output()
        assert s.events.wait("exit")["code"] == 0, s.proc.output()
        _assert_all_removed(docker_client, s.proc, [s.server, s.hello])
        assert fetch(s.url) is None


def test_sigterm_during_a_rebuild_stops_and_removes_everything(hello: Path, repo: str, docker_client: Any) -> None:
    import docker.errors

    old_images = []
    with watching(hello, repo, docker_client, hello="service") as s:
        old_images = [image_id(docker_client, f"{repo}/{name}:latest") for name in ("server", "hello")]
        mark = s.events.mark()
        set_greeting(hello, "Interrupted")
        s.events.wait("changes", mark, timeout=30)  # a build, load or restart is under way
        code = s.proc.stop(signal.SIGTERM, timeout=30)
        assert code == 0, s.proc.output()
        assert s.events.wait("exit")["code"] == 0, s.proc.output()
        _assert_all_removed(docker_client, s.proc, [s.server, s.hello])
        assert fetch(s.url) is None
    # Interrupted between loading a new image and dropping the one it replaced, kodev may leave that one.
    for old in old_images:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            docker_client.images.remove(old)


def test_restart_false_service_is_left_running(hello: Path, repo: str, docker_client: Any) -> None:
    keep_port = free_port()
    uid = uuid.uuid4().hex[:8]
    kept = f"keep-{uid}"
    extra = f'''
[services.{kept}]
command = "./cmd/server"
args = ["-addr", "127.0.0.1:{keep_port}"]
network = "host"
stop_timeout = 3
restart = false
'''
    try:
        with watching(hello, repo, docker_client, extra=extra) as s:
            keep_url = f"http://127.0.0.1:{keep_port}/"
            wait_for_page(keep_url, "Hello, kodev!", timeout=30)
            kept_id = container_id(docker_client, kept)

            mark = s.events.mark()
            set_greeting(hello, "Rebuilt")
            s.wait_rebuilt("server", mark)
            wait_for_page(s.url, "Rebuilt, kodev!", timeout=30)
            # restart = false: started once, not recreated by a rebuild
            assert container_id(docker_client, kept) == kept_id
            assert "Hello, kodev!" in (fetch(keep_url) or "")

            code = s.proc.stop(signal.SIGINT, timeout=30)
            assert code == 0, s.proc.output()
            assert not containers(docker_client, s.server), s.proc.output()
            left = containers(docker_client, kept)
            assert [c.id for c in left] == [kept_id], s.proc.output()
            left[0].reload()
            assert left[0].status == "running"
            assert "Hello, kodev!" in (fetch(keep_url) or "")
    finally:
        for container in containers(docker_client, kept):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_sigkill_then_a_new_watch_removes_the_stale_container(hello: Path, repo: str, docker_client: Any,
                                                             delivery: str) -> None:
    import docker.errors

    uid, port = uuid.uuid4().hex[:8], free_port()
    with watching(hello, repo, docker_client, uid=uid, port=port) as first:
        stale = container_id(docker_client, first.server)
        first.proc.kill()  # SIGKILL: no cleanup
        # The same service name and port: the stale container holds both until it is removed. Every kodev
        # removes the containers of dead kodevs when it starts, so on this shared daemon another test's kodev
        # may be the one that removes it (the message naming what was removed is checked on a daemon of its
        # own: test_newcomer.py's test_daemon_gone_at_cleanup_...); either way the next watch starts.
        with watching(hello, repo, docker_client, uid=uid, port=port) as second:
            with pytest.raises(docker.errors.NotFound):
                docker_client.containers.get(stale)
            serving = container_id(docker_client, second.server)
            assert serving != stale
            mark = second.events.mark()
            set_greeting(hello, "Second session")
            result = second.wait_rebuilt("server", mark)
            wait_for_page(second.url, "Second session, kodev!", timeout=30)
            assert_delivered(docker_client, second, result, serving, delivery)


def test_name_taken_by_a_foreign_container_is_a_clear_error(hello: Path, repo: str, docker_client: Any) -> None:
    uid = uuid.uuid4().hex[:8]
    write(hello / "kodev.toml", f'repo = "{repo}"\n')
    built = kodev_build(["./cmd/hello"], hello)
    assert built.returncode == 0, built.output()
    foreign = docker_client.containers.create(f"{repo}/hello:latest", name=f"srv-{uid}", network_mode="host",
                                              labels={"test.owner": "not-kodev"})
    try:
        with watching(hello, repo, docker_client, uid=uid, started=False) as s:
            code = s.proc.process.wait(timeout=60)
            assert code != 0, s.proc.output()
            assert s.events.wait("exit")["code"] == code, s.proc.output()
            [error] = s.events.errors()
            assert error["fatal"] is True, error
            assert f"srv-{uid}" in error["message"] and "kodev did not create it" in error["message"], error
            assert "Traceback" not in "\n".join(s.proc.err_lines())
            assert s.events.all("build.started") == [] and s.events.all("command.result") == [], \
                "kodev built before it found the name taken"
        foreign.reload()  # still there (NotFound otherwise), untouched
        assert foreign.status == "created" and foreign.labels.get("test.owner") == "not-kodev"
    finally:
        foreign.remove(force=True)


def test_logs_are_multiplexed_with_service_prefixes(hello: Path, repo: str, docker_client: Any) -> None:
    """About the human output, so on kodev's text (no --json): each service's lines on stdout behind its name,
    padded to the longest. (With --json they are `service.log` events naming their service.)"""
    with watching(hello, repo, docker_client, hello="service", started=False, json=False) as s:
        width = max(len(s.server), len(s.hello))
        s.proc.wait_for(rf"^{s.server}\s* \| .*server listening on http://127\.0\.0\.1:{s.port}",
                        stream="stdout", timeout=120)
        s.proc.wait_for(rf"^{s.hello}\s* \| Hello, kodev-test!$", stream="stdout", timeout=30)
        for line in s.proc.out_lines():
            assert re.match(rf"^({s.server}|{s.hello})\s* \| ", line), f"unprefixed stdout line: {line!r}"
            assert line.index(" | ") == width, f"prefix not padded to the longest name: {line!r}"
