"""From a compose project to built images: which commands its kodev services name, built as `kodev build`
builds them; and `kodev resolve`, the project printed with those images in place of `ko://` references."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kodev import cache
from kodev.compose.locate import ComposeCLI
from kodev.compose.override import write_override
from kodev.compose.project import ComposeProject, ComposeService, classify, compose_failure, load_project
from kodev.compose.project import split_reference as _split
from kodev.errors import ConfigError, GoError
from kodev.gomod import enclosing

if TYPE_CHECKING:
    from kodev.builder import BuiltImage
    from kodev.plan import CommandPlan
    from kodev.settings import Config
    from kodev.ui import UI


class BuildSession(Protocol):
    """What this stage needs of a session: its config, its commands planned and built, where to warn.
    `kodev.session.Session` is one; a protocol, so that this stage does not import the composition root."""

    @property
    def config(self) -> Config: ...

    @property
    def ui(self) -> UI: ...

    def plan(self, paths: Sequence[str], origins: Mapping[str, str] | None = None) -> list[CommandPlan]: ...

    def build(self, plans: Sequence[CommandPlan]) -> list[BuiltImage]: ...


def _might_be_own(session: BuildSession, project: ComposeProject) -> bool:
    """Whether any image could be one of kodev's tags (saves a `go list` for projects with none)."""
    custom = {c.image for c in session.config.commands.values() if c.image}
    for service in project.services:
        if service.is_kodev or not service.image_ref_raw:
            continue
        repository, _ = _split(service.image_ref_raw)
        if repository.startswith(f"{session.config.repo}/") or repository in custom:
            return True
    return False


def own_references(session: BuildSession, project: ComposeProject) -> dict[str, str]:
    """kodev's image repositories (`kodev.local/server`) -> the command building each.

    The candidates are the commands of kodev.toml and every `package main` of the Go module (or
    workspace) that holds the compose project, named as `kodev build` would tag them.
    """
    paths = [session.config.command_path(key) for key in session.config.commands]
    paths += [session.config.command_path(service.command) for service in session.config.services.values()]
    if enclosing(project.workdir, "go.mod") or enclosing(project.workdir, "go.work"):
        module = enclosing(project.workdir, "go.mod") or project.workdir
        paths.append(f"{module}/...")
    if not paths:
        return {}
    try:
        plans = session.plan(paths)
    except (GoError, ConfigError):
        return {}  # no module to take commands from: no image is kodev's by name
    return {plan.repository: str(plan.command.dir) for plan in plans}


def load_with_own_refs(session: BuildSession, cli: ComposeCLI, files: Sequence[Path],
                       project_name: str | None = None) -> ComposeProject:
    """`load_project`, with images that name kodev's own tags counted as kodev services."""
    project = load_project(cli, files, project_name)
    if _might_be_own(session, project):
        project = classify(project, own_references(session, project))
    return project


def _describe(service: ComposeService) -> str:
    where = f", relative to {service.defined_in}" if service.defined_in else ""
    return f"service {service.name!r} (image {service.image_ref_raw}{where})"


def command_plans(session: BuildSession, project: ComposeProject) -> dict[str, CommandPlan]:
    """Service -> the plan of the command it runs, for every kodev service; errors name the service."""
    services = project.kodev_services
    paths = [s.command_path or "" for s in services]
    if not services:
        return {}
    try:
        plans = session.plan(paths)
    except GoError:
        for service, path in zip(services, paths, strict=True):  # which service: plan each alone
            try:
                session.plan([path])
            except GoError as exc:
                raise GoError(f"{_describe(service)}: {exc}") from None
        raise
    result: dict[str, CommandPlan] = {}
    for service, path in zip(services, paths, strict=True):
        local = Path(path) if path.startswith("/") else None
        match = next((p for p in plans if (p.command.dir == local if local else p.command.import_path == path)),
                     None)
        if match is None:
            raise GoError(f"{_describe(service)}: {path} does not name one `package main` (a pattern such as "
                          "./cmd/... names several); give the directory or import path of one command.")
        result[service.name] = match
    return result


def build_services(session: BuildSession, project: ComposeProject) -> dict[str, BuiltImage]:
    """Build every kodev service's command (one `go build`), load the images: service -> built image."""
    plans = command_plans(session, project)
    unique: list[CommandPlan] = []
    for plan in plans.values():
        if plan not in unique:
            unique.append(plan)
    built = {b.plan: b for b in session.build(unique)} if unique else {}
    return {service: built[plan] for service, plan in plans.items()}


def resolved_config(cli: ComposeCLI, project: ComposeProject, images: Mapping[str, str]) -> str:
    """Compose's own `config` (YAML) of the project with `images` ({service: reference}) in place."""
    with tempfile.TemporaryDirectory(prefix="resolve-", dir=cache.subdir("tmp")) as scratch:
        override = write_override(project, images, Path(scratch), pull_never=False)
        args = [*(a for f in (*project.files, override) for a in ("-f", str(f))), "-p", project.name, "config"]
        done = cli.run(args, cwd=project.workdir, timeout=120)
    if done.returncode != 0:
        raise compose_failure(f"Compose could not print project {project.name!r}", done.stderr)
    return done.stdout


def resolve(session: BuildSession, cli: ComposeCLI, files: Sequence[Path], project_name: str | None = None) -> str:
    """`kodev resolve`: build the project's kodev services and return the merged compose file using them."""
    project = load_with_own_refs(session, cli, files, project_name)
    if not project.kodev_services:
        session.ui.warn(f"no service of {', '.join(str(f) for f in project.files)} runs a kodev command (an image "
                        "ko://<import path>, ko://./dir or a kodev tag such as kodev.local/NAME): printing it as "
                        "Compose reads it.")
    built = build_services(session, project)
    return resolved_config(cli, project, {service: b.plan.ref for service, b in built.items()})
