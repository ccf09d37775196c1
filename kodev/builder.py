"""The build pipeline, stage after stage: compile -> snapshot -> assemble -> publish. Used by build, run, watch
and the benchmark (plans come from kodev/plan.py).

The builder builds; where images go is its `Publisher`'s business (kodev/publish/)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kodev import cache
from kodev.config import Config
from kodev.directbuild import DirectBuilds
from kodev.epoch import Epochs
from kodev.gobuild import Binary, compile_commands, for_debugging
from kodev.gomod import MainPackage
from kodev.gotool import GoTool
from kodev.image import base as base_images
from kodev.image.assemble import REVISION_LABEL, SOURCE_LABEL, Image, ImageSpec, assemble
from kodev.image.kodata import KODATA_DIR, KodataIndex, kodata_snapshot
from kodev.image.layers import Layer, binary_layer
from kodev.image.resolve import Bases
from kodev.plan import CommandPlan
from kodev.platform import Platform
from kodev.publish import Published, Publisher
from kodev.report import CommandReport
from kodev.templates import GitHead, GitInfo, git_head, git_info
from kodev.ui import UI


@dataclass(frozen=True)
class Snapshot:
    """What a round reads once besides the binary: it is what the image delivers and what the next round
    compares against, never a later state of the tree. `sources`: the kodata directory and every link
    target in it (a change under one of them changes the kodata)."""

    plan: CommandPlan
    base: base_images.BaseImage
    kodata: Layer
    sources: frozenset[Path]
    spec: ImageSpec
    kodata_index: KodataIndex = field(default_factory=KodataIndex)  # the files of its kodata layer (by name)


class ImageBuilder(Protocol):
    """The stages from sources to a published image, for rounds (rebuild.py), `kodev build` and the
    benchmark: compile many commands at once, then per command snapshot -> binary layer -> image -> publish.
    The binary layer is separate so that a swap can serve before it is made."""

    def compile(self, plans: Sequence[CommandPlan], scratch: Path, strip: bool = False,
                superseded: Callable[[], bool] | None = None, debug: bool = False,
                direct: DirectBuilds | None = None) -> tuple[list[Binary], float]: ...

    def heads(self, commands: Sequence[MainPackage]) -> dict[Path, GitHead | None]: ...

    def snapshot(self, plan: CommandPlan, git: GitHead | None) -> Snapshot: ...

    def binary_layer(self, plan: CommandPlan, binary: Binary) -> Layer: ...

    def image(self, snapshot: Snapshot, top: Layer) -> Image: ...

    def publish(self, plan: CommandPlan, image: Image) -> Published: ...

    def prune(self, in_use: set[Path]) -> None:
        """Keep the layer cache within its budget; `in_use` stays."""
        ...


@dataclass(frozen=True)
class BuiltImage:
    plan: CommandPlan
    binary: Binary
    image: Image
    published: Published


@dataclass
class Builder:
    """Runs the pipeline for a set of plans. Holds what is worth reusing between builds (base images).

    `epochs` and `layer_budget` are read from the environment at the edge (the session); the defaults are
    0 seconds and the cache's default budget."""

    config: Config
    go: GoTool
    platform: Platform
    bases: Bases
    publisher: Publisher
    ui: UI
    epochs: Epochs = dataclasses.field(default_factory=Epochs)
    layer_budget: int | None = None

    def git(self, commands: Sequence[MainPackage]) -> dict[Path, GitInfo | None]:
        return {c.module_dir: git_info(c.module_dir) for c in commands}

    def compile(self, plans: Sequence[CommandPlan], scratch: Path, strip: bool = False,
                superseded: Callable[[], bool] | None = None, debug: bool = False,
                direct: DirectBuilds | None = None) -> tuple[list[Binary], float]:
        """One `go build` for all plans (as few as their settings allow); the binaries and the time taken.
        Raises `Superseded` when `superseded` says newer saves came meanwhile (kodev/gobuild.py).

        `strip` (watch mode) links without DWARF and the symbol table: about a third faster for a small
        server; panics' stack traces keep their function names, debuggers lose symbols. `debug` (kodev
        debug) builds for Delve instead: no optimizations, DWARF kept, host source paths. With `direct`, a
        learned recipe compiles and links instead of go build where it may (kodev/directbuild.py), and each
        go build teaches it."""
        started = time.monotonic()
        requests = [p.request for p in plans]
        if debug:
            requests = [for_debugging(r) for r in requests]
        elif strip:
            requests = [r if {"-s", "-w"} <= set(r.ldflags)
                        else dataclasses.replace(r, ldflags=(*r.ldflags, "-s", "-w")) for r in requests]
        with self.ui.building([p.name for p in plans]) as progress:  # progress, build events
            found = direct.build(requests, scratch, superseded, progress) if direct is not None else None
            if found is not None:
                progress.direct = True
                binaries = found
            else:
                before = direct.stamp(requests) if direct is not None else {}
                binaries = compile_commands(self.go, requests, scratch, progress, superseded)
                if direct is not None:
                    direct.learn(binaries, requests, before)
        return binaries, time.monotonic() - started

    def base(self, plan: CommandPlan) -> base_images.BaseImage:
        return self.bases.get(plan.base, plan.base_where)

    def heads(self, commands: Sequence[MainPackage]) -> dict[Path, GitHead | None]:
        """The git checkout of each module, the cheap way (every rebuild round: HEAD may have moved)."""
        return {c.module_dir: git_head(c.module_dir) for c in commands}

    def allowed_root(self, command: MainPackage, git: GitHead | None) -> Path:
        """Where kodata symlinks may point: the enclosing git worktree, else the module."""
        return git.root if git is not None else command.module_dir

    def binary_layer(self, plan: CommandPlan, binary: Binary) -> Layer:
        return binary_layer(binary.path, binary.digest, plan.command.app_name, self.epochs.created)

    def snapshot(self, plan: CommandPlan, git: GitHead | None) -> Snapshot:
        """Everything of the image but its binary, read now: the kodata (one walk), the base, the config."""
        command = plan.command
        base = self.base(plan)
        kodata_dir = command.dir / KODATA_DIR
        sources = {kodata_dir.absolute()}
        kodata, index = kodata_snapshot(kodata_dir, self.allowed_root(command, git),
                                        self.epochs.kodata, parents=not base.has_var_run, on_link=sources.add)
        labels = {}
        if git is not None:
            labels[REVISION_LABEL] = git.full_commit
            if git.remote_url:
                labels[SOURCE_LABEL] = git.remote_url
        spec = ImageSpec(import_path=command.import_path, app_name=command.app_name, platform=self.platform,
                         created=self.epochs.created, labels=labels)
        return Snapshot(plan, base, kodata, frozenset(sources), spec, index)

    def image(self, snapshot: Snapshot, top: Layer) -> Image:
        """The snapshot with `top` as its binary layer: base + kodata + binary, with ko's config (no I/O)."""
        return assemble(snapshot.base, snapshot.kodata, top, snapshot.spec)

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
                snapshot = self.snapshot(plan, git.get(plan.command.module_dir))
                image = self.image(snapshot, self.binary_layer(plan, binary))
                image_seconds = time.monotonic() - started
                published = self.publish(plan, image)
                self.ui.report(CommandReport(plan.name, "image", image_seconds + published.seconds, go=None,
                                             image=image_seconds, published=published))
                built.append(BuiltImage(plan, binary, image, published))
        self.prune({layer.path for b in built for layer in b.image.layers})
        return built

    def prune(self, in_use: set[Path]) -> None:
        """Keep the layer cache within its budget; layers of the images just built and of bases stay."""
        cache.prune_layers(in_use | self.bases.layer_paths(), self.layer_budget)
