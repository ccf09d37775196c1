"""`kodev watch -f compose.yaml` swapping binaries into the containers Compose runs (real Compose, Go, daemon).

kodev's override makes its supervisor the entrypoint of api and worker; a binary-only change is served by
the same container; a compose-file change lets Compose recreate a service, and the next binary change is
swapped into the new container. store (Compose's own) is never touched. Each test reads kodev's `--json`
events (the versioned schema), never its human text.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from kodev.compose import ComposeCLI
from kodev.deliver.supervision import MOUNT_POINT, SUPERVISOR
from tests.integration.compose_support import (  # noqa: F401 - fixtures
    Stack,
    compose_cli,
    compose_watch,
    edit,
    rebuilt_into,
    said,
    service_ids,
    stack,
    unique_name,
)
from tests.integration.process import wait_for_page


def _entrypoint(client: Any, container_id: str) -> str:
    return str((client.api.inspect_container(container_id)["Config"]["Entrypoint"] or [""])[0])


def _swap_dirs(client: Any, container_id: str) -> list[str]:
    mounts = client.api.inspect_container(container_id)["Mounts"]
    return [m["Source"] for m in mounts if m.get("Destination") == MOUNT_POINT]


def test_a_binary_only_change_is_swapped_into_the_container_compose_runs(
        stack: Stack, compose_cli: ComposeCLI, repo: str, docker_client: Any) -> None:  # noqa: F811
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\n')
    proc, events = compose_watch(stack, "-f", "compose.yaml", "-p", stack.name,
                                 env={"KODEV_SWAP": "1", "KODEV_DEBUG": "1"})
    try:
        events.wait("watching", timeout=240)
        wait_for_page(stack.url("api"), "Clear is better than clever.")
        first = service_ids(docker_client, stack.name)
        assert _entrypoint(docker_client, first["api"]) == f"{MOUNT_POINT}/{SUPERVISOR}", proc.output()
        assert _entrypoint(docker_client, first["worker"]) == f"{MOUNT_POINT}/{SUPERVISOR}"
        assert _entrypoint(docker_client, first["store"]) != f"{MOUNT_POINT}/{SUPERVISOR}"
        [directory] = _swap_dirs(docker_client, first["api"])

        # A package only api imports: swapped into api's container; nothing is recreated.
        mark = events.mark()
        edit(stack.dir / "internal" / "quotes" / "quotes.go", "Clear is better", "Clearer is better")
        wait_for_page(stack.url("api"), "Clearer is better than clever.")
        events.wait("command.result", mark, rebuilt_into("api", "swapped"), timeout=30)
        assert service_ids(docker_client, stack.name) == first
        assert (Path(directory) / "api").is_file()

        # The compose file changes api's environment: Compose recreates it, on the image's own binary
        # (the swapped one is cleared first), and a later binary change swaps into the new container.
        mark = events.mark()
        edit(stack.compose_file, "    network_mode: host\n    depends_on: [store]",
              "    network_mode: host\n    environment: [SWAP_TEST=1]\n    depends_on: [store]")
        events.wait("message", mark, said(f"compose project {stack.name} updated"), timeout=60)
        second = service_ids(docker_client, stack.name)
        assert second["api"] != first["api"] and second["worker"] == first["worker"]
        assert _entrypoint(docker_client, second["api"]) == f"{MOUNT_POINT}/{SUPERVISOR}"
        wait_for_page(stack.url("api"), "Clearer is better than clever.")  # the image followed the swap
        mark = events.mark()
        edit(stack.dir / "internal" / "quotes" / "quotes.go", "Clearer is better", "Clearest is better")
        wait_for_page(stack.url("api"), "Clearest is better than clever.")
        events.wait("command.result", mark, rebuilt_into("api", "swapped"), timeout=30)
        assert service_ids(docker_client, stack.name) == second

        # Ctrl-C stops the project; its containers keep their mounts, so the directory stays.
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert events.wait("exit", timeout=10)["code"] == 0 and events.fatal() == [], proc.output()
        assert Path(directory).is_dir() and (Path(directory) / SUPERVISOR).is_file()
        assert "Traceback" not in proc.output()
    finally:
        proc.kill()


def test_down_removes_the_swap_directories_with_the_containers(
        stack: Stack, compose_cli: ComposeCLI, repo: str, docker_client: Any) -> None:  # noqa: F811
    (stack.dir / "kodev.toml").write_text(f'repo = "{repo}"\n')
    proc, events = compose_watch(stack, "-f", "compose.yaml", "-p", stack.name, "--down", env={"KODEV_SWAP": "1"})
    try:
        events.wait("watching", timeout=240)
        [directory] = _swap_dirs(docker_client, service_ids(docker_client, stack.name)["worker"])
        assert Path(directory).is_dir()
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert events.wait("exit", timeout=10)["code"] == 0, proc.output()
        assert events.all("message", said(f"took compose project {stack.name} down")), proc.output()
        assert service_ids(docker_client, stack.name) == {}
        assert not Path(directory).exists()
    finally:
        proc.kill()
