"""Replacing a container around a load (kodev.deliver.replacement.Replacement), against the real daemon.

The old container is renamed and stopped while the new image loads; `finish` puts the new one under the
name, `undo` (the load failed) brings the old one back. Both must leave exactly one serving container.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kodev.containers import Containers
from kodev.deliver.replacement import Replacement
from kodev.ownership import SESSION_LABEL, Owner
from kodev.services import ContainerSpec
from tests.integration.conftest import run_kodev
from tests.integration.process import free_port, wait_for_page


@pytest.fixture
def server_image(hello: Path, docker_client: Any) -> Iterator[str]:
    repo = f"kodev.test/{uuid.uuid4().hex[:12]}"
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    done = run_kodev(["build", "./cmd/server"], hello)
    assert done.returncode == 0, done.stderr
    yield f"{repo}/server:latest"
    docker_client.api.remove_image(f"{repo}/server:latest", force=True)


@pytest.fixture
def containers(docker_client: Any) -> Iterator[Containers]:
    owned = Containers(docker_client, Owner.current())
    yield owned
    owned.cleanup({})


def _names(client: Any, owner: Owner) -> list[str]:
    listed = client.api.containers(all=True, filters={"label": f"{SESSION_LABEL}={owner.session}"})
    return sorted(c["Names"][0].lstrip("/") for c in listed)


def test_finish_puts_the_new_container_under_the_name(server_image: str, containers: Containers,
                                                      docker_client: Any) -> None:
    port = free_port()
    spec = ContainerSpec(service="web", name=f"repl-{uuid.uuid4().hex[:8]}", command="./cmd/server",
                         args=("-addr", f"127.0.0.1:{port}"), network="host", stop_timeout=5)
    old = containers.create_and_start(spec, server_image)
    wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!")
    new = Replacement(containers, old, spec).finish(server_image)
    assert new != old and not containers.exists(old)
    assert docker_client.api.inspect_container(new)["Name"] == f"/{spec.name}"
    assert _names(docker_client, containers.owner) == [spec.name]
    wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!")


def test_undo_brings_the_old_container_back(server_image: str, containers: Containers, docker_client: Any) -> None:
    port = free_port()
    spec = ContainerSpec(service="web", name=f"repl-{uuid.uuid4().hex[:8]}", command="./cmd/server",
                         args=("-addr", f"127.0.0.1:{port}"), network="host", stop_timeout=5)
    old = containers.create_and_start(spec, server_image)
    wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!")
    Replacement(containers, old, spec).undo()
    state = docker_client.api.inspect_container(old)
    assert state["Name"] == f"/{spec.name}" and state["State"]["Running"]
    assert _names(docker_client, containers.owner) == [spec.name]
    wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!")
