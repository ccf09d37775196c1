"""Bringing a compose project up, stopping it, taking it down, and finding its containers.

Every call goes through the real Compose CLI with the user's files plus kodev's override, and the same
project name, so Compose itself scopes it to this project (its `com.docker.compose.project` label):
containers of other projects on the daemon are never touched. Behaviour relied on (checked against
Compose v2.40 on dockerd 20.10 by tests/integration/test_compose_lifecycle.py):

- `up -d` on a running project is idempotent ("Running"): adopting a project is just `up -d`;
- `up -d` recreates a container whose image ID differs from the one its tag now names;
- `up -d --no-deps svc` touches only `svc` (other services, even exited ones, are left as they are);
- `stop` keeps containers and volumes; `down` removes containers (and the project's networks), and
  named volumes only with `volumes=True`;
- a failure exits non-zero with Compose's message on stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from kodev.compose.locate import ComposeCLI
from kodev.compose.project import ComposeProject, compose_failure

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
_TIMEOUT = 600  # seconds a Compose call may take (a `build:` service builds during the first `up`)

Recreate = Literal["auto", "force", "never"]


def project_args(project: ComposeProject, override: Path | None) -> list[str]:
    """`-f` each user file, then the override (last, so it wins), then `-p NAME`."""
    files = [*project.files, *([override] if override else [])]
    return [*(arg for path in files for arg in ("-f", str(path))), "-p", project.name]


def _run(cli: ComposeCLI, project: ComposeProject, override: Path | None, args: Sequence[str], what: str) -> str:
    done = cli.run([*project_args(project, override), *args], cwd=project.workdir, timeout=_TIMEOUT)
    if done.returncode != 0:
        raise compose_failure(f"`compose {what}` of project {project.name!r} failed", done.stderr)
    return done.stderr  # Compose writes its progress lines to stderr


def up(cli: ComposeCLI, project: ComposeProject, override: Path | None, services: Sequence[str] | None = None,
       recreate: Recreate = "auto", no_deps: bool = False, timeout: int | None = None) -> str:
    """`up -d` (the named services, else all): create, start or recreate as Compose decides; its progress.

    `recreate="force"` recreates even unchanged containers, `"never"` keeps existing ones; `no_deps`
    leaves the services' dependencies alone; `timeout` is the stop timeout for containers it replaces.
    """
    args = ["up", "-d"]
    if recreate == "force":
        args.append("--force-recreate")
    elif recreate == "never":
        args.append("--no-recreate")
    if no_deps:
        args.append("--no-deps")
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    return _run(cli, project, override, [*args, *(services or ())], "up")


def stop(cli: ComposeCLI, project: ComposeProject, override: Path | None = None,
         services: Sequence[str] | None = None, timeout: int | None = None) -> str:
    """`stop`: containers stay (for `docker compose start`/`logs`), volumes are never touched."""
    args = ["stop", *(["--timeout", str(timeout)] if timeout is not None else []), *(services or ())]
    return _run(cli, project, override, args, "stop")


def down(cli: ComposeCLI, project: ComposeProject, override: Path | None = None, volumes: bool = False,
         timeout: int | None = None) -> str:
    """`down`: stop and remove the project's containers and networks; named volumes only if `volumes`."""
    args = ["down", *(["--volumes"] if volumes else []), *(["--timeout", str(timeout)] if timeout is not None else [])]
    return _run(cli, project, override, args, "down")


def containers(client: Any, project_name: str, running_only: bool = False) -> dict[str, tuple[str, ...]]:
    """Service -> full IDs of its containers in `project_name` (by Compose's labels; `run` one-offs left out).

    Through the Docker SDK `client` (kodev's own connection): no Compose process needed to follow logs.
    """
    found = client.containers.list(all=not running_only, filters={"label": f"{PROJECT_LABEL}={project_name}"})
    by_service: dict[str, list[str]] = {}
    for container in found:
        labels = container.labels or {}
        if labels.get(ONEOFF_LABEL, "False") == "True" or labels.get(PROJECT_LABEL) != project_name:
            continue
        by_service.setdefault(labels.get(SERVICE_LABEL, ""), []).append(container.id)
    return {service: tuple(sorted(ids)) for service, ids in sorted(by_service.items())}
