"""`kodev watch -f compose.yaml` on examples/compose, with the real Compose binary, real Go and the real daemon.

The project is api + worker (ko:// services sharing internal/serve, each with a package of its own) and
store (a `build:` service that is Compose's business, with a named volume).

kodev's default swaps a binary-only change into the containers Compose runs (same container IDs); with
KODEV_SWAP=0 Compose recreates them. The test of which services a change reaches runs under both.
"""

from __future__ import annotations

import signal
from typing import Any

from kodev.compose import ComposeCLI
from tests.integration.compose_support import (  # noqa: F401 - fixtures
    Stack,
    compose_cli,
    edit,
    service_ids,
    stack,
    unique_name,
)
from tests.integration.conftest import delivered_word
from tests.integration.process import KodevProcess, fetch, free_port, sigint_not_ignored, wait_for_page, wait_until


def _running(client: Any, project: str) -> dict[str, str]:
    return {s: client.containers.get(i).status for s, i in service_ids(client, project).items()}


def test_watch_delivers_only_to_the_services_a_change_affects(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                              docker_client: Any, delivery: str) -> None:
    repo = unique_name("kodevtest.local/c")  # our own image names: never the user's kodev.local/api
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\n')
    with sigint_not_ignored():
        proc = KodevProcess(["watch", "-f", "compose.yaml", "-p", stack.name], cwd=stack.dir)
    try:
        proc.wait_for(r"^watching ", timeout=240)
        wait_for_page(stack.url("api"), "Clear is better than clever. (stack release 1)")
        wait_for_page(stack.url("worker"), "(stack release 1)")
        first = service_ids(docker_client, stack.name)
        assert set(first) == {"api", "worker", "store"}, first
        assert docker_client.images.get(f"{repo}/api:latest")  # kodev built it, Compose runs it

        # A package only api imports: api gets the new binary (swapped into its container, or a new
        # container), worker and store keep theirs.
        edit(stack.dir / "internal" / "quotes" / "quotes.go", "Clear is better", "Clearer is better")
        wait_for_page(stack.url("api"), "Clearer is better than clever.")
        proc.wait_for(rf"^\s+api\s+rebuilt in .*\b{delivered_word(delivery)} [\d.]+s", timeout=30)
        second = service_ids(docker_client, stack.name)
        assert (second["api"] == first["api"]) == (delivery == "swap"), (first, second, proc.output())
        assert second["worker"] == first["worker"] and second["store"] == first["store"]

        # The shared package: both Go services get it, store does not.
        edit(stack.dir / "internal" / "serve" / "serve.go", "stack release 1", "stack release 2")
        wait_for_page(stack.url("api"), "(stack release 2)")
        wait_for_page(stack.url("worker"), "(stack release 2)")
        proc.wait_for(rf"^\s+worker\s+rebuilt in .*\b{delivered_word(delivery)} [\d.]+s", timeout=30)
        third = service_ids(docker_client, stack.name)
        swapped = delivery == "swap"
        assert (third["api"] == second["api"]) == swapped and (third["worker"] == second["worker"]) == swapped, \
            (second, third, proc.output())
        assert third["store"] == first["store"]

        # A broken build: everything keeps running on the last good images.
        errors = proc.count(r"^error: ")
        edit(stack.dir / "internal" / "serve" / "serve.go", "package serve", "package serve\n\nfunc broken( {")
        proc.wait_for(r"^error: ", count=errors + 1, timeout=60)
        proc.wait_for(r"build failed; the running containers keep the last good build", timeout=30)
        assert service_ids(docker_client, stack.name) == third
        assert "(stack release 2)" in (fetch(stack.url("worker")) or "")
        assert set(_running(docker_client, stack.name).values()) == {"running"}
        # Logs of every service, with their prefixes.
        wait_until(lambda: proc.count(r"^store\s+\| ", stream="stdout") >= 1, 30, proc.output)
        assert proc.count(r"^api\s+\| ", stream="stdout") >= 1

        volume = f"{stack.name}_store-data"
        assert docker_client.volumes.get(volume)
        assert proc.stop(signal.SIGINT) == 0, proc.output()
    finally:
        proc.kill()

    # Ctrl-C stops the project as `docker compose up` does: containers kept (stopped), the volume kept.
    states = _running(docker_client, stack.name)
    assert set(states) == {"api", "worker", "store"} and set(states.values()) == {"exited"}, states
    assert docker_client.volumes.get(volume)
    assert "stopped compose project" in proc.output()


def test_watch_leaves_another_project_untouched_and_adopts_a_running_one(
        stack: Stack, compose_cli: ComposeCLI, docker_client: Any) -> None:  # noqa: F811
    repo = unique_name("kodevtest.local/c")
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
            with sigint_not_ignored():
                proc = KodevProcess(["watch", "-f", "compose.yaml", "-p", stack.name, "--down"], cwd=stack.dir)
            try:
                proc.wait_for(r"^watching ", timeout=240)
                wait_for_page(stack.url("api"), "(stack release 1)")
                assert proc.stop(signal.SIGINT) == 0, proc.output()
            finally:
                proc.kill()
            # --down: the project's containers are gone, its volume stays, the other project runs on.
            assert not service_ids(docker_client, stack.name)
            assert docker_client.volumes.get(f"{stack.name}_store-data")
            assert service_ids(docker_client, other) == other_ids
            assert set(_running(docker_client, other).values()) == {"running"}
    finally:
        compose_cli.run(["-p", other, "down", "--timeout", "1"], cwd=other_dir)


def test_a_compose_file_named_in_kodev_toml_is_watched_without_f(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                                  docker_client: Any) -> None:
    repo = unique_name("kodevtest.local/c")
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\ncompose = ["compose.yaml"]\n')
    with sigint_not_ignored():
        proc = KodevProcess(["watch", "-p", stack.name], cwd=stack.dir)
    try:
        proc.wait_for(r"^watching ", timeout=240)
        proc.wait_for(rf"compose project {stack.name} is up", timeout=5)
        wait_for_page(stack.url("api"), "(stack release 1)")
        assert set(service_ids(docker_client, stack.name)) == {"api", "worker", "store"}
        assert proc.stop(signal.SIGINT) == 0, proc.output()
    finally:
        proc.kill()
