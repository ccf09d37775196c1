"""Reading a compose project: Compose normalizes it (`config --format json`), kodev finds its own services.

Profiles, `.env`, `extends`, `include` and interpolation are Compose's business: kodev reads the model
Compose prints. A service is kodev's when its image is `ko://<import path>`, `ko://./relative/dir`, or one
of kodev's own references (e.g. `kodev.local/server[:latest]`, given by the caller as `own_refs`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kodev.compose.locate import ComposeCLI, ComposeError
from kodev.gomod import KO_SCHEME
from kodev.imageref import parse as parse_reference

_CONFIG_TIMEOUT = 120  # seconds; `config` reads local files only


@dataclass(frozen=True)
class ComposeService:
    """One service of the normalized model. `command_path` is what kodev builds, None for Compose's own."""

    name: str
    image_ref_raw: str  # the image as Compose normalized it (after interpolation); "" when it has none
    command_path: str | None  # an absolute directory or an import path, as `kodev build` takes them
    has_build: bool = False  # a `build:` section (kodev resets it on its own services)
    defined_in: Path | None = None  # the compose file whose `image:` named a relative ko:// path

    @property
    def is_kodev(self) -> bool:
        return self.command_path is not None


@dataclass(frozen=True)
class ComposeProject:
    """A compose project as Compose sees it. `workdir` is the project directory (the first file's)."""

    files: tuple[Path, ...]
    name: str
    workdir: Path
    services: tuple[ComposeService, ...]
    explicit_name: bool = False  # -p was given (else Compose's default from the directory name)
    model: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def kodev_services(self) -> tuple[ComposeService, ...]:
        return tuple(s for s in self.services if s.is_kodev)

    def service(self, name: str) -> ComposeService:
        return next(s for s in self.services if s.name == name)


def _files_args(files: Sequence[Path], project_name: str | None) -> list[str]:
    args = [arg for path in files for arg in ("-f", str(path))]
    return [*args, "-p", project_name] if project_name else args


def compose_failure(what: str, stderr: str, hint: str = "") -> ComposeError:
    """Compose's own message (its last lines; it prints one error per line), in kodev's paragraph."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    message = "\n".join(lines[-8:]) if lines else "no message"
    message = message if message.endswith(".") else message + "."
    return ComposeError(f"{what}: {message}{(' ' + hint) if hint else ''}")


def normalized_model(cli: ComposeCLI, files: Sequence[Path], project_name: str | None = None,
                     extra_files: Sequence[Path] = ()) -> dict[str, Any]:
    """`compose -f ... config --format json`: the project after Compose merged and interpolated it."""
    args = [*_files_args([*files, *extra_files], project_name), "config", "--format", "json"]
    done = cli.run(args, cwd=files[0].parent, timeout=_CONFIG_TIMEOUT)
    if done.returncode != 0:
        names = ", ".join(str(f) for f in files)
        raise compose_failure(f"Compose could not read {names}", done.stderr,
                              "Fix the place Compose names and run again.")
    try:
        model = json.loads(done.stdout)
    except ValueError:
        raise ComposeError(f"`{' '.join(cli.argv)} config --format json` printed something that is not JSON; "
                           "is it Docker Compose v2?") from None
    if not isinstance(model, dict):
        raise ComposeError("Compose printed a model that is not a mapping; is it Docker Compose v2?")
    return model


def load_project(cli: ComposeCLI, files: Sequence[Path], project_name: str | None = None,
                 own_refs: Mapping[str, str] | None = None) -> ComposeProject:
    """Read the project the way Compose does and tell kodev's services from Compose's.

    `own_refs` maps kodev image repositories (`kodev.local/server`) to the command path that builds them;
    an image naming one of them (untagged or `:latest`) makes its service kodev's.
    """
    if not files:
        raise ComposeError("no compose file given: name one with -f compose.yaml (repeatable, as in Compose).")
    paths = tuple(Path(f).absolute() for f in files)
    for path in paths:
        if not path.is_file():
            raise ComposeError(f"{path}: no such compose file. Check the -f path.")
    model = normalized_model(cli, paths, project_name)
    project = ComposeProject(files=paths, name=str(model.get("name") or ""), workdir=paths[0].parent, services=(),
                             explicit_name=project_name is not None, model=model)
    return classify(project, own_refs or {})


def classify(project: ComposeProject, own_refs: Mapping[str, str]) -> ComposeProject:
    """The project with its services told apart again, now knowing kodev's own references."""
    origins = image_origins(project.files)
    services = []
    for name, raw in sorted((project.model.get("services") or {}).items()):
        image = str((raw or {}).get("image") or "")
        services.append(_service(name, image, bool((raw or {}).get("build")), origins.get(name, project.workdir),
                                 own_refs))
    return dataclasses.replace(project, services=tuple(services))


def _service(name: str, image: str, has_build: bool, origin: Path, own_refs: Mapping[str, str]) -> ComposeService:
    if image.startswith(KO_SCHEME):
        target = image.removeprefix(KO_SCHEME)
        if target.startswith("."):  # ko's convention: relative to the compose file that says it
            return ComposeService(name, image, str((origin / target).resolve()), has_build, origin)
        return ComposeService(name, image, target, has_build)
    repository, tag = split_reference(image)
    if repository in own_refs and tag in ("", "latest"):
        return ComposeService(name, image, own_refs[repository], has_build)
    return ComposeService(name, image, None, has_build)


def split_reference(image: str) -> tuple[str, str]:
    """("kodev.local/server", "latest") from "kodev.local/server:latest"; a registry port is not a tag."""
    parts = parse_reference(image)
    if parts.digest:
        return image, "@"  # pinned by digest: never one of kodev's moving tags
    return parts.repository, parts.tag


# --- which file a service's image came from (for relative ko:// paths) ----------------------------


def image_origins(files: Sequence[Path]) -> dict[str, Path]:
    """Service -> directory of the last file (in Compose's order) that sets its `image`.

    Compose rewrites relative paths it knows about (build contexts, binds) but not `image`, so kodev reads
    the raw files: `-f` files in order, `include`d files before the file including them, `extends` followed.
    """
    origins: dict[str, Path] = {}
    for path in files:
        _read_origins(path, origins, seen=set())
    return origins


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}  # Compose already accepted or rejected the project; this is only a lookup
    return data if isinstance(data, dict) else {}


def _read_origins(path: Path, origins: dict[str, Path], seen: set[Path]) -> None:
    if path in seen or not path.is_file():
        return
    seen.add(path)
    data = _load_yaml(path)
    for item in data.get("include") or ():
        for included in _include_paths(item):
            _read_origins((path.parent / included).resolve(), origins, seen)
    for name, service in (data.get("services") or {}).items():
        if not isinstance(service, dict):
            continue
        if "image" in service:
            origins[str(name)] = path.parent
        elif isinstance(service.get("extends"), dict) and name not in origins:
            extended = _extended_origin(path, service["extends"], set())
            if extended is not None:
                origins[str(name)] = extended


def _include_paths(item: Any) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, dict):
        value = item.get("path")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [str(v) for v in value]
    return []


def _extended_origin(path: Path, extends: Mapping[str, Any], seen: set[tuple[Path, str]]) -> Path | None:
    """The directory of the file that sets `image` for the service `extends` points at, if any."""
    target = (path.parent / str(extends["file"])).resolve() if extends.get("file") else path
    name = str(extends.get("service", ""))
    if (target, name) in seen:
        return None
    seen.add((target, name))
    service = (_load_yaml(target).get("services") or {}).get(name)
    if not isinstance(service, dict):
        return None
    if "image" in service:
        return target.parent
    if isinstance(service.get("extends"), dict):
        return _extended_origin(target, service["extends"], seen)
    return None
