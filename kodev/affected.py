"""Stage 'decide': which commands a batch of file changes affects. Pure: no I/O, no Go, no Docker.

Decided from the package graph, not from globs: a file counts when it is one a command is built from
(its dependency packages' Go, assembly and .syso files and embedded files — vendored packages' too), part
of its kodata, or a go.mod/go.sum/go.work/vendor/modules.txt.
The watch loop normalizes events first (an atomic save or delete-then-create is one 'modified').
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kodev.gomod import GoPackage, ModuleGraph, is_module_file

Change = Literal["added", "modified", "deleted"]
_NOISE = re.compile(r"(~$|^\.#|^#.*#$|\.sw[a-p]x?$|^4913$|\.tmp$|\.bak$|\.orig$|^\.DS_Store$)")
_OTHER_BUILD_SUFFIXES = {".s", ".S", ".h", ".syso"}  # assembled, included or linked without cgo too
_NOISE_DIRS = {".git", ".hg", ".svn", ".idea", ".vscode", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class FileChange:
    path: Path
    change: Change
    # For a modified .go file: it imports a package its package did not import before (graph is stale).
    new_imports: bool = False


@dataclass(frozen=True)
class Decision:
    rebuild: frozenset[str]  # commands to compile and re-image
    reimage: frozenset[str]  # commands whose kodata changed: a new image without `go build`
    refresh_graph: bool  # files were added or removed, or imports changed: reload the package graph

    def merge(self, other: Decision) -> Decision:
        return Decision(self.rebuild | other.rebuild, self.reimage | other.reimage,
                        self.refresh_graph or other.refresh_graph)


def is_noise(path: Path) -> bool:
    """Editor swap and backup files, VCS and tool directories: never part of a build."""
    return bool(_NOISE.search(path.name)) or any(part in _NOISE_DIRS for part in path.parts)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def decide(changes: Iterable[FileChange], graph: ModuleGraph,
           kodata_sources: Mapping[str, frozenset[Path]]) -> Decision:
    """The commands to rebuild or re-image for `changes`.

    `kodata_sources` maps a command to its kodata directory and every path its kodata symlinks resolve
    to, so that editing a linked file counts as a kodata change.
    """
    rebuild: set[str] = set()
    reimage: set[str] = set()
    refresh = False
    for item in changes:
        path = item.path
        if is_noise(path) or path.name.endswith("_test.go"):
            continue
        if is_module_file(path):
            if any(_under(path, root) for root in graph.roots):
                rebuild.update(graph.deps)
                refresh = True
            continue
        reimage.update(command for command, sources in kodata_sources.items()
                       if any(_under(path, source) for source in sources))
        if path.suffix == ".go":
            package = graph.package_in(path.parent)
            if package is not None:
                hit, stale = _go_file(item, package)
                refresh = refresh or stale
                if hit:
                    rebuild.update(graph.dependents(package.import_path))
            elif item.change != "modified" and any(_under(path, root) for root in graph.roots):
                # A package the graph does not know (yet): a command may import it already, and a build
                # that failed for want of it must be retried once it exists.
                refresh = True
        elif path.suffix in _OTHER_BUILD_SUFFIXES:
            package = graph.package_in(path.parent)
            if package is not None and path.name in package.build_files:
                rebuild.update(graph.dependents(package.import_path))
                refresh = refresh or item.change != "modified"
            elif package is not None and path.name not in package.excluded_files:
                refresh = True  # a new assembly file or .syso: let Go say whether it is built
        for package in graph.packages_above(path):
            if package.embed_files or package.embed_dirs:
                hit, stale = _embedded(item, package)
                refresh = refresh or stale
                if hit:
                    rebuild.update(graph.dependents(package.import_path))
    return Decision(frozenset(rebuild), frozenset(reimage - rebuild), refresh)


def _go_file(item: FileChange, package: GoPackage) -> tuple[bool, bool]:
    """(affects the package's build, the graph must be refreshed) for a .go file in `package`."""
    name = item.path.name
    if name in package.build_files:
        return True, item.change != "modified" or item.new_imports
    if name in package.excluded_files:
        # Excluded by build constraints today; an edit may change the constraint, so let Go re-decide.
        return False, True
    return False, True  # a file the graph does not know yet: let Go say whether it is built


def _embedded(item: FileChange, package: GoPackage) -> tuple[bool, bool]:
    rel = item.path.relative_to(package.dir).as_posix()
    if rel in package.embed_files:
        return True, item.change == "deleted"
    if any(rel.startswith(f"{directory}/") for directory in package.embed_dirs):
        return True, True  # a new file inside an embedded directory
    return False, False
