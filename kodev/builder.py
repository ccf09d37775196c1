"""The build pipeline, stage after stage: plan -> compile -> assemble -> publish. Used by build, run and watch.

The builder builds; where images go is its `Publisher`'s business (kodev/publish/)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev import cache
from kodev.config import CommandConfig, Config
from kodev.errors import ConfigError
from kodev.gobuild import Binary, BuildRequest, compile_commands
from kodev.gomod import KO_SCHEME, MainPackage
from kodev.gotool import GoTool
from kodev.image import base as base_images
from kodev.image.assemble import REVISION_LABEL, SOURCE_LABEL, Image, ImageSpec, assemble
from kodev.image.kodata import KODATA_DIR, kodata_layer
from kodev.image.layers import Layer, binary_layer
from kodev.image.resolve import Bases
from kodev.platform import Platform
from kodev.publish import Published, Publisher
from kodev.report import CommandReport
from kodev.templates import GitHead, GitInfo, TemplateContext, expand, git_head, git_info
from kodev.ui import UI


@dataclass(frozen=True)
class CommandPlan:
    """Everything decided about one command before anything is built."""

    command: MainPackage
    request: BuildRequest
    base: str
    base_where: str
    repository: str  # e.g. kodev.local/server

    @property
    def ref(self) -> str:
        return f"{self.repository}:latest"

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    @property
    def container_name(self) -> str:
        """The default container name: the command's name, made one Docker accepts (`a` -> `kodev-a`)."""
        from kodev.config import CONTAINER_NAME

        return self.name if CONTAINER_NAME.match(self.name) else f"kodev-{self.name}"


@dataclass(frozen=True)
class BuiltImage:
    plan: CommandPlan
    binary: Binary
    image: Image
    published: Published


def _epoch(*names: str) -> int:
    """The first of the named variables that is set (SOURCE_DATE_EPOCH, ...), as seconds; else 0."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise ConfigError(f"{name}={value!r} is not a number of seconds since the epoch; "
                                  f"fix or unset {name}.")
            return int(value)
    return 0


def _command_config(config: Config, command: MainPackage) -> tuple[str, CommandConfig] | None:
    """The settings for `command`: every table naming it (by path or import path), later keys winning."""
    found: list[tuple[str, CommandConfig]] = []
    for key, table in config.commands.items():
        target = key.removeprefix(KO_SCHEME)
        local = target.startswith(".")
        if (local and (config.root / target).resolve() == command.dir) or (not local and target == command.import_path):
            found.append((key, table))
    if not found:
        return None
    key, merged = found[0]
    for _, table in found[1:]:
        merged = CommandConfig(path=merged.path, base=table.base or merged.base, image=table.image or merged.image,
                               build=table.build.over(merged.build))
    return key, merged


def plan_commands(config: Config, commands: Sequence[MainPackage], git: dict[Path, GitInfo | None]
                  ) -> list[CommandPlan]:
    """Settings, base and image name of each command; two commands with one image name is an error."""
    plans: list[CommandPlan] = []
    by_repository: dict[str, CommandPlan] = {}
    where_file = config.describe()
    for command in commands:
        found = _command_config(config, command)
        key, table = found if found else (None, CommandConfig(path=command.import_path))
        prefix = f'{where_file}: commands."{key}"' if key else where_file
        settings = table.build.over(config.build)
        context = TemplateContext.current(command.module_dir, git.get(command.module_dir))

        def where(setting: str, own: tuple[str, ...] | None, key: str | None = key) -> str:
            """The key a setting came from: the command's own table, or [build]."""
            return f'{where_file}: commands."{key}".{setting}' if own is not None else f"{where_file}: build.{setting}"

        request = BuildRequest(
            command=command,
            env=settings.env or (),
            flags=tuple(expand(f, context, where("flags", table.build.flags)) for f in settings.flags or ()),
            ldflags=tuple(expand(f, context, where("ldflags", table.build.ldflags)) for f in settings.ldflags or ()),
        )
        name = table.image or command.app_name
        repository = name if "/" in name else f"{config.repo}/{name}"
        plan = CommandPlan(command=command, request=request, base=table.base or config.base,
                           base_where=f"{prefix}.base" if table.base else f"{where_file}: base",
                           repository=repository)
        clash = by_repository.get(repository)
        if clash is not None and clash.command != command:
            raise ConfigError(
                f"{clash.command.import_path} and {command.import_path} would both be tagged "
                f"{repository}. Give one of them its own name in {config.path or 'kodev.toml'}, e.g. "
                f'[commands."{command.import_path}"] image = "{command.app_name}-2".')
        by_repository[repository] = plan
        if plan not in plans:
            plans.append(plan)
    return plans


class Builder:
    """Runs the pipeline for a set of plans. Holds what is worth reusing between builds (base images)."""

    def __init__(self, config: Config, go: GoTool, platform: Platform, bases: Bases, publisher: Publisher,
                 ui: UI) -> None:
        self.config = config
        self.go = go
        self.platform = platform
        self.bases = bases
        self.publisher = publisher
        self.ui = ui

    def git(self, commands: Sequence[MainPackage]) -> dict[Path, GitInfo | None]:
        return {c.module_dir: git_info(c.module_dir) for c in commands}

    def compile(self, plans: Sequence[CommandPlan], scratch: Path, strip: bool = False
                ) -> tuple[list[Binary], float]:
        """One `go build` for all plans (as few as their settings allow); the binaries and the time taken.

        `strip` (watch mode) links without DWARF and the symbol table: about a third faster for a small
        server; panics' stack traces keep their function names, debuggers lose symbols."""
        started = time.monotonic()
        requests = [p.request for p in plans]
        if strip:
            requests = [r if {"-s", "-w"} <= set(r.ldflags)
                        else dataclasses.replace(r, ldflags=(*r.ldflags, "-s", "-w")) for r in requests]
        with self.ui.building([p.name for p in plans]) as on_package:  # progress, build events
            binaries = compile_commands(self.go, requests, scratch, on_package)
        return binaries, time.monotonic() - started

    def base(self, plan: CommandPlan) -> base_images.BaseImage:
        return self.bases.get(plan.base, plan.base_where)

    def heads(self, commands: Sequence[MainPackage]) -> dict[Path, GitHead | None]:
        """The git checkout of each module, the cheap way (every rebuild round: HEAD may have moved)."""
        return {c.module_dir: git_head(c.module_dir) for c in commands}

    def allowed_root(self, command: MainPackage, git: GitHead | GitInfo | None) -> Path:
        """Where kodata symlinks may point: the enclosing git worktree, else the module."""
        return git.root if git is not None else command.module_dir

    def binary_layer(self, plan: CommandPlan, binary: Binary) -> Layer:
        return binary_layer(binary.path, binary.digest, plan.command.app_name, _epoch("SOURCE_DATE_EPOCH"))

    def read_kodata(self, plan: CommandPlan, git: GitHead | GitInfo | None) -> Layer:
        """The command's kodata as a layer, read now. A round reads it once: the image it delivers and what
        the next round compares against are that one snapshot, never a later state of the tree."""
        command = plan.command
        return kodata_layer(command.dir / KODATA_DIR, self.allowed_root(command, git),
                            _epoch("KO_DATA_DATE_EPOCH", "SOURCE_DATE_EPOCH"), parents=not self.base(plan).has_var_run)

    def image(self, plan: CommandPlan, top: Layer, kodata: Layer, git: GitHead | GitInfo | None) -> Image:
        """Base + the given kodata and binary layers, with ko's config."""
        command = plan.command
        labels = {}
        if git is not None:
            labels[REVISION_LABEL] = git.full_commit
            if git.remote_url:
                labels[SOURCE_LABEL] = git.remote_url
        spec = ImageSpec(import_path=command.import_path, app_name=command.app_name, platform=self.platform,
                         created=_epoch("SOURCE_DATE_EPOCH"), labels=labels)
        return assemble(self.base(plan), kodata, top, spec)

    def publish(self, plan: CommandPlan, image: Image) -> Published:
        """Send the image to its destinations; a base that came from the daemon says which layers it has."""
        in_daemon = self.base(plan).in_daemon
        return self.publisher.publish(image, plan.ref, hints=[in_daemon] if in_daemon else [])

    def build(self, plans: Sequence[CommandPlan]) -> list[BuiltImage]:
        """Compile all plans in one `go build`, then assemble and publish each image; a line per stage."""
        for plan in plans:
            self.base(plan)  # a bad base is reported before anything is compiled
        git = self.git([p.command for p in plans])
        built: list[BuiltImage] = []
        with tempfile.TemporaryDirectory(prefix="build-", dir=cache.subdir("tmp")) as scratch:
            binaries, go_seconds = self.compile(plans, Path(scratch))
            self.ui.stage("go build", ", ".join(p.name for p in plans), go_seconds)
            for plan, binary in zip(plans, binaries, strict=True):
                started = time.monotonic()
                head = git.get(plan.command.module_dir)
                image = self.image(plan, self.binary_layer(plan, binary), self.read_kodata(plan, head), head)
                image_seconds = time.monotonic() - started
                published = self.publish(plan, image)
                self.ui.report(CommandReport(plan.name, "image", image_seconds + published.seconds, go=None,
                                             image=image_seconds, published=published))
                built.append(BuiltImage(plan, binary, image, published))
        self.prune({layer.path for b in built for layer in b.image.layers})
        return built

    def prune(self, in_use: set[Path]) -> None:
        """Keep the layer cache within its budget; layers of the images just built and of bases stay."""
        cache.prune_layers(in_use | self.bases.layer_paths())
