"""`kodev watch -f compose.yaml` on examples/compose, with the real Compose binary, real Go and the real daemon.

The project is api + worker (ko:// services sharing internal/serve, each with a package of its own) and
store (a `build:` service that is Compose's business, with a named volume).

kodev's default swaps a binary-only change into the containers Compose runs (same container IDs); with
KODEV_SWAP=0 Compose recreates them. The test of which services a change reaches runs under both.
Each test reads kodev's `--json` events (the versioned schema), never its human text.
"""

from __future__ import annotations

import signal
from typing import Any

from kodev.compose import ComposeCLI
from tests.integration.compose_support import (  # noqa: F401 - fixtures
    Stack,
    compose_cli,
    compose_watch,
    delivered_how,
    edit,
    rebuilt_into,
    said,
    service_ids,
    stack,
    unique_name,
)
from tests.integration.process import fetch, free_port, wait_for_page


def _running(client: Any, project: str) -> dict[str, str]:
    return {s: client.containers.get(i).status for s, i in service_ids(client, project).items()}


def test_watch_delivers_only_to_the_services_a_change_affects(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                              repo: str, docker_client: Any, delivery: str) -> None:
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\n')
    proc, events = compose_watch(stack, "-f", "compose.yaml", "-p", stack.name)
    how = delivered_how(delivery)
    try:
        events.wait("watching", timeout=240)
        wait_for_page(stack.url("api"), "Clear is better than clever. (stack release 1)")
        wait_for_page(stack.url("worker"), "(stack release 1)")
        first = service_ids(docker_client, stack.name)
        assert set(first) == {"api", "worker", "store"}, first
        assert docker_client.images.get(f"{repo}/api:latest")  # kodev built it, Compose runs it

        # A package only api imports: api gets the new binary (swapped into its container, or a new
        # container), worker and store keep theirs.
        mark = events.mark()
        edit(stack.dir / "internal" / "quotes" / "quotes.go", "Clear is better", "Clearer is better")
        wait_for_page(stack.url("api"), "Clearer is better than clever.")
        events.wait("command.result", mark, rebuilt_into("api", how), timeout=30)
        assert events.rebuilt("worker", mark) == [], proc.output()
        second = service_ids(docker_client, stack.name)
        assert (second["api"] == first["api"]) == (delivery == "swap"), (first, second, proc.output())
        assert second["worker"] == first["worker"] and second["store"] == first["store"]

        # The shared package: both Go services get it, store does not.
        mark = events.mark()
        edit(stack.dir / "internal" / "serve" / "serve.go", "stack release 1", "stack release 2")
        wait_for_page(stack.url("api"), "(stack release 2)")
        wait_for_page(stack.url("worker"), "(stack release 2)")
        events.wait("command.result", mark, rebuilt_into("worker", how), timeout=30)
        events.wait("command.result", mark, rebuilt_into("api", how), timeout=30)
        third = service_ids(docker_client, stack.name)
        swapped = delivery == "swap"
        assert (third["api"] == second["api"]) == swapped and (third["worker"] == second["worker"]) == swapped, \
            (second, third, proc.output())
        assert third["store"] == first["store"]

        # A broken build: everything keeps running on the last good images.
        mark = events.mark()
        edit(stack.dir / "internal" / "serve" / "serve.go", "package serve", "package serve\n\nfunc broken( {")
        failed = events.wait("build.failed", mark, timeout=60)
        assert set(failed["commands"]) == {"api", "worker"}, failed
        error = events.wait("error", mark, timeout=30)
        assert error["kind"] == "CompileError" and not error["fatal"], error
        events.wait("message", mark, said("the running containers keep the last good build", "warning"), timeout=30)
        assert service_ids(docker_client, stack.name) == third
        assert "(stack release 2)" in (fetch(stack.url("worker")) or "")
        assert set(_running(docker_client, stack.name).values()) == {"running"}
        # Logs of every service, each line named by its service.
        events.wait("service.log", match=lambda e: e["service"] == "store", timeout=30)
        assert events.count("service.log", lambda e: e["service"] == "api") >= 1, proc.output()

        volume = f"{stack.name}_store-data"
        assert docker_client.volumes.get(volume)
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert events.wait("exit", timeout=10)["code"] == 0 and events.fatal() == [], proc.output()
    finally:
        proc.kill()

    # Ctrl-C stops the project as `docker compose up` does: containers kept (stopped), the volume kept.
    states = _running(docker_client, stack.name)
    assert set(states) == {"api", "worker", "store"} and set(states.values()) == {"exited"}, states
    assert docker_client.volumes.get(volume)
    assert events.all("message", said(f"stopped compose project {stack.name}")), proc.output()


def test_watch_leaves_another_project_untouched_and_adopts_a_running_one(
        stack: Stack, compose_cli: ComposeCLI, repo: str, docker_client: Any) -> None:  # noqa: F811
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\n')
    other = unique_name("othertest")
    other_dir = stack.dir.parent / "other"
    other_dir.mkdir()
    (other_dir / "compose.yaml").write_text(
        "services:\n  idle:\n    build: ../stack/store\n"
        f"    command: ['-addr', '127.0.0.1:{free_port()}', '-data', '/data']\n"
        "    network_mode: host\n    volumes: [/data]\n")
    try:
        started = compose_cli.run(["-p", other, "up", "-d", "--build"], cwd=other_dir, timeout=180)
        assert started.returncode == 0, started.stderr
        other_ids = service_ids(docker_client, other)
        for _round in range(2):  # the second kodev adopts the project the first one stopped
            proc, events = compose_watch(stack, "-f", "compose.yaml", "-p", stack.name, "--down")
            try:
                events.wait("watching", timeout=240)
                wait_for_page(stack.url("api"), "(stack release 1)")
                assert proc.stop(signal.SIGINT) == 0, proc.output()
                assert events.wait("exit", timeout=10)["code"] == 0 and events.fatal() == [], proc.output()
            finally:
                proc.kill()
            # --down: the project's containers are gone, its volume stays, the other project runs on.
            assert not service_ids(docker_client, stack.name)
            assert docker_client.volumes.get(f"{stack.name}_store-data")
            assert service_ids(docker_client, other) == other_ids
            assert set(_running(docker_client, other).values()) == {"running"}
    finally:
        compose_cli.run(["-p", other, "down", "--timeout", "1", "--rmi", "local"], cwd=other_dir)


def test_a_compose_file_named_in_kodev_toml_is_watched_without_f(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                                  repo: str, docker_client: Any) -> None:
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\ncompose = ["compose.yaml"]\n')
    proc, events = compose_watch(stack, "-p", stack.name)
    try:
        events.wait("watching", timeout=240)
        events.wait("message", match=said(f"compose project {stack.name} is up"), timeout=5)
        wait_for_page(stack.url("api"), "(stack release 1)")
        assert set(service_ids(docker_client, stack.name)) == {"api", "worker", "store"}
        assert proc.stop(signal.SIGINT) == 0, proc.output()
    finally:
        proc.kill()
