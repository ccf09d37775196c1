"""What the compose tests share: the real Compose binary, a private copy of examples/compose with free ports
and a unique project name, cleanup that takes down exactly that project, and small helpers (an edit, the
containers of a project by service, `kodev watch --json` on the copy and matchers for its events)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kodev.compose import ComposeCLI, ComposeError, containers, find_compose
from tests.examples import copy_example
from tests.integration.conftest import _missing
from tests.integration.json_events import Event, Events, Match
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored


@pytest.fixture(scope="session")
def compose_cli() -> ComposeCLI:
    try:
        return find_compose()
    except ComposeError as exc:
        _missing(f"Docker Compose v2 ({exc})")
        raise


@dataclass(frozen=True)
class Stack:
    """A copy of examples/compose: its directory, its project name and the ports its services listen on."""

    dir: Path
    name: str
    ports: dict[str, int]

    @property
    def compose_file(self) -> Path:
        return self.dir / "compose.yaml"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}/"


def unique_name(prefix: str = "kodevtest") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stack(tmp_path: Path, go_binary: str, docker_client: Any, compose_cli: ComposeCLI,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """examples/compose copied, the store's binary built (its Dockerfile copies it), ports free on 127.0.0.1.

    Ports reach Compose through its own interpolation (API_PORT...), set in the environment kodev runs in.
    Taken down with its volumes afterwards, by project name only.
    """
    target = tmp_path / "stack"
    copy_example("compose", target)
    subprocess.run([go_binary, "build", "-o", "store", "."], cwd=target / "store", check=True,
                   env={**os.environ, "CGO_ENABLED": "0"}, capture_output=True)
    ports = {"api": free_port(), "worker": free_port(), "store": free_port()}
    for service, port in ports.items():
        monkeypatch.setenv(f"{service.upper()}_PORT", str(port))
    monkeypatch.chdir(target)
    made = Stack(dir=target, name=unique_name(), ports=ports)
    yield made
    compose_cli.run(["-p", made.name, "down", "--volumes", "--timeout", "2"])
    for image in docker_client.images.list(filters={"reference": f"{made.name}-*"}):
        docker_client.images.remove(image.id, force=True)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def service_ids(client: Any, project: str) -> dict[str, str]:
    """The container of each service of `project` (its first, if several)."""
    return {service: ids[0] for service, ids in containers(client, project).items() if ids}


def compose_watch(stack: Stack, *args: str, env: dict[str, str] | None = None) -> tuple[KodevProcess, Events]:
    """`kodev watch --json ARGS` in the copy's directory, stopped by SIGINT as from a terminal; its events."""
    with sigint_not_ignored():
        proc = KodevProcess(["watch", "--json", *args], cwd=stack.dir, env=env)
    return proc, Events(proc)


def delivered_how(delivery: str) -> str:
    """How a `delivered` event names the delivery of a binary-only change: swapped in place, or recreated."""
    return "swapped" if delivery == "swap" else "recreated"


def rebuilt_into(service: str, how: str) -> Match:
    """A `command.result` that rebuilt a command and delivered it to the compose service `service` as `how`."""
    def match(event: Event) -> bool:
        return event["outcome"] == "rebuilt" and {"service": service, "how": how} in [
            {"service": d["service"], "how": d["how"]} for d in event["delivered"]]

    return match


def said(text: str, level: str = "info") -> Match:
    """A `message` event of `level` whose text contains `text`."""
    return lambda event: event["level"] == level and text in event["text"]
