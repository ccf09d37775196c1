"""up/stop/down/containers on examples/compose, with the real Compose binary and the real daemon.

These pin the Compose behaviours kodev's delivery relies on: recreate when a tag's image ID moved (and only
then), adoption by `up -d`, `--no-deps` touching one service, stop vs down, volumes kept, other projects
left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kodev.compose import (
    ComposeCLI,
    ComposeError,
    ComposeProject,
    containers,
    down,
    stop,
    up,
    write_override,
)
from kodev.compose.lifecycle import PROJECT_LABEL
from kodev.compose_build import build_services, load_with_own_refs
from kodev.session import Session
from tests.integration.compose_support import Stack, compose_cli, stack, unique_name  # noqa: F401 - fixtures
from tests.integration.process import free_port, wait_for_page


def _build_and_override(stack: Stack, cli: ComposeCLI) -> tuple[ComposeProject, Path]:  # noqa: F811
    with Session.open(None, None, None) as session:
        project = load_with_own_refs(session, cli, [stack.compose_file], stack.name)
        built = build_services(session, project)
    return project, write_override(project, {service: b.plan.ref for service, b in built.items()})


def _states(client: Any, name: str) -> dict[str, tuple[str, str]]:
    """Service -> (container ID, state) for a project with one container per service."""
    result = {}
    for service, ids in containers(client, name).items():
        assert len(ids) == 1, (service, ids)
        result[service] = (ids[0], client.containers.get(ids[0]).status)
    return result


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_up_recreates_only_services_whose_image_changed(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                        docker_client: Any) -> None:
    project, override = _build_and_override(stack, compose_cli)
    assert {s.name for s in project.kodev_services} == {"api", "worker"}
    up(compose_cli, project, override)
    wait_for_page(stack.url("api"), "Clear is better than clever.")
    wait_for_page(stack.url("worker"), "worker: job tidy")
    assert wait_for_page(stack.url("store"), "starts") == "starts 1\n"
    first = _states(docker_client, stack.name)
    assert set(first) == {"api", "worker", "store"} and {s for _, s in first.values()} == {"running"}

    # Adoption: `up -d` on the running project with the same files changes nothing.
    up(compose_cli, project, override)
    assert _states(docker_client, stack.name) == first

    # The api's own package: a new image behind the same tag; only the api is recreated.
    _edit(stack.dir / "internal" / "quotes" / "quotes.go", "Clear is better than clever.", "Don't panic.")
    project, override = _build_and_override(stack, compose_cli)
    up(compose_cli, project, override)
    second = _states(docker_client, stack.name)
    assert second["api"][0] != first["api"][0]
    assert second["worker"] == first["worker"] and second["store"] == first["store"]
    wait_for_page(stack.url("api"), "Don't panic.")

    # The shared package: both Go services are recreated, the store is not.
    _edit(stack.dir / "internal" / "serve" / "serve.go", "stack release 1", "stack release 2")
    project, override = _build_and_override(stack, compose_cli)
    up(compose_cli, project, override)
    third = _states(docker_client, stack.name)
    assert third["api"][0] != second["api"][0] and third["worker"][0] != second["worker"][0]
    assert third["store"] == first["store"]
    wait_for_page(stack.url("worker"), "stack release 2")


def test_no_deps_stop_and_down(stack: Stack, compose_cli: ComposeCLI, docker_client: Any) -> None:  # noqa: F811
    project, override = _build_and_override(stack, compose_cli)
    up(compose_cli, project, override)
    wait_for_page(stack.url("store"), "starts 1")
    stop(compose_cli, project, override, services=["worker"])
    before = _states(docker_client, stack.name)
    assert before["worker"][1] == "exited"

    # `up -d --no-deps api` (forced): only the api's container is touched, not the stopped worker nor the store.
    up(compose_cli, project, override, services=["api"], no_deps=True, recreate="force")
    after = _states(docker_client, stack.name)
    assert after["api"][0] != before["api"][0] and after["api"][1] == "running"
    assert after["worker"] == before["worker"] and after["store"] == before["store"]

    # stop: every container kept, stopped; the volume kept: the store counts its second start.
    stop(compose_cli, project, override, timeout=5)
    stopped = _states(docker_client, stack.name)
    assert {c for c, _ in stopped.values()} == {c for c, _ in after.values()}
    assert {s for _, s in stopped.values()} == {"exited"}
    up(compose_cli, project, override)
    assert wait_for_page(stack.url("store"), "starts") == "starts 2\n"

    # down: containers gone, the named volume kept (as `docker compose down` without -v).
    down(compose_cli, project, override, timeout=5)
    assert containers(docker_client, stack.name) == {}
    assert docker_client.volumes.get(f"{stack.name}_store-data") is not None
    up(compose_cli, project, override)
    assert wait_for_page(stack.url("store"), "starts") == "starts 3\n"


def test_another_project_on_the_daemon_is_untouched(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                    docker_client: Any, tmp_path: Path) -> None:
    project, override = _build_and_override(stack, compose_cli)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_port = free_port()
    # Another team's project using one of the same images, started by Compose without kodev.
    (other_dir / "compose.yaml").write_text(
        "services:\n  worker:\n    image: kodev.local/worker:latest\n    pull_policy: never\n"
        f"    command: ['-addr', '127.0.0.1:{other_port}']\n    network_mode: host\n")
    other = unique_name("kodevother")
    done = compose_cli.run(["-f", str(other_dir / "compose.yaml"), "-p", other, "up", "-d"])
    try:
        assert done.returncode == 0, done.stderr
        wait_for_page(f"http://127.0.0.1:{other_port}/", "worker")
        theirs = _states(docker_client, other)
        up(compose_cli, project, override)
        wait_for_page(stack.url("api"), "api")
        stop(compose_cli, project, override, timeout=5)
        assert _states(docker_client, other) == theirs
        down(compose_cli, project, override, volumes=True, timeout=5)
        assert _states(docker_client, other) == theirs
        assert containers(docker_client, stack.name) == {}
        labelled = docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={other}"},
                                                 ignore_removed=True)
        assert [c.status for c in labelled] == ["running"]
    finally:
        compose_cli.run(["-p", other, "down", "--timeout", "2"])


def test_compose_failures_carry_composes_message(stack: Stack, compose_cli: ComposeCLI) -> None:  # noqa: F811
    project, override = _build_and_override(stack, compose_cli)
    with pytest.raises(ComposeError, match="no such service: nosuch"):
        up(compose_cli, project, override, services=["nosuch"])
