"""The override file kodev adds after the user's compose files: its services run the images kodev built.

Written in kodev's cache (never next to the user's files). Each kodev service gets `image:` set to the
built reference and `pull_policy: never` (a `ko://` name or a local-only tag must never be pulled); a
`build:` section on such a service is reset (`!reset`) so that Compose does not build it instead.
Compose recreates a container when the image ID behind its tag changed (it records the ID in the
`com.docker.compose.image` label), so the moving tag `kodev.local/x:latest` is enough for `up`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kodev import cache
from kodev.compose.project import ComposeProject
from kodev.errors import KodevError


class _Reset:
    """Compose's `!reset` tag: removes a key the user's files set."""


def override_document(project: ComposeProject, images: Mapping[str, str], pull_never: bool = True,
                      extras: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The override as data: {"services": {name: {"image": ref, ...}}} for each service in `images`;
    `extras` adds keys to a service's entry (the supervisor of a service that swaps binaries)."""
    known = {s.name: s for s in project.services}
    services: dict[str, Any] = {}
    for name, ref in sorted(images.items()):
        service = known.get(name)
        if service is None:
            raise KodevError(f"{name}: no such service in the compose project {project.name!r} "
                             f"({', '.join(str(f) for f in project.files)}).")
        entry: dict[str, Any] = {"image": ref}
        if pull_never:
            entry["pull_policy"] = "never"
        if service.has_build:
            entry["build"] = _Reset()
        entry.update((extras or {}).get(name, {}))
        services[name] = entry
    return {"services": services}


def render(document: Mapping[str, Any]) -> str:
    import yaml  # here, not at the top: only a compose project needs it, and it is 15 ms of every start

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Reset, lambda dumper, _: dumper.represent_scalar("!reset", ""))
    return yaml.dump(dict(document), Dumper=Dumper, sort_keys=False, default_flow_style=False)


def override_dir() -> Path:
    """Where override files live: kodev's cache, never the user's tree."""
    return cache.subdir("compose")


def override_path(project: ComposeProject, directory: Path | None = None) -> Path:
    """One file per project (name and directory): a second kodev on the same project rewrites the same one."""
    key = hashlib.sha256(f"{project.name}\0{project.workdir}".encode()).hexdigest()[:12]
    return (directory or override_dir()) / f"{project.name}-{key}.override.yaml"


def write_override(project: ComposeProject, images: Mapping[str, str], directory: Path | None = None,
                   pull_never: bool = True, extras: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write the override for `images` ({service: built image reference}); its path. Atomic replace."""
    path = override_path(project, directory)
    text = "# Written by kodev: the images it built for this project. Not for editing.\n" + render(
        override_document(project, images, pull_never, extras))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".override-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
