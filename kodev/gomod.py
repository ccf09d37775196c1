"""Stage 'know the module': which packages the user means, and (for watching) what they are built from."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kodev.errors import ConfigError, GoError, KodevError
from kodev.gotool import GoTool

KO_SCHEME = "ko://"
_LIST_FIELDS = "ImportPath,Name,Dir,Module,Error"


@dataclass(frozen=True)
class MainPackage:
    """A `package main` of the main module (or a go.work member): one command, one image."""

    import_path: str
    dir: Path
    module_path: str
    module_dir: Path

    @property
    def app_name(self) -> str:
        """The binary's name, as `go build` names it: the last element, skipping a /vN major version."""
        parts = self.import_path.split("/")
        last = parts[-1]
        if len(parts) > 1 and last[:1] == "v" and last[1:].isdigit():
            return parts[-2]
        return last


def enclosing(start: Path, marker: str) -> Path | None:
    """The nearest directory at or above `start` that holds `marker` (go.mod, go.work)."""
    for directory in (start, *start.parents):
        if (directory / marker).is_file():
            return directory
    return None


def decode_json_stream(text: str) -> Iterator[dict[str, Any]]:
    """`go list -json` prints concatenated JSON objects, not a JSON array."""
    decoder = json.JSONDecoder()
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return
        obj, index = decoder.raw_decode(text, index)
        yield obj


def _is_local(arg: str) -> bool:
    return arg.startswith((".", "/")) or arg in (".", "..")


class _Names:
    """How the paths given are named in errors: an argument as typed, or the config key it came from
    (`kodev.toml: services.server.command: ./cmd/sever`). A config key's error is the config's."""

    def __init__(self, origins: Mapping[str, str] | None) -> None:
        self.origins = dict(origins or {})

    def __call__(self, arg: str) -> str:
        return self.origins.get(arg, arg)

    def error(self, arg: str, problem: str) -> KodevError:
        kind = ConfigError if arg in self.origins else GoError
        return kind(f"{self(arg)}: {problem}")


def resolve_commands(go: GoTool, args: Sequence[str], cwd: Path, origins: Mapping[str, str] | None = None
                     ) -> list[MainPackage]:
    """Turn `./cmd/x`, `example.com/m/cmd/x` or `ko://example.com/m/cmd/x` into `MainPackage`s.

    `./cmd/...` patterns keep only their main packages; a single path that is not `package main`, does
    not exist or lies outside the module is an error naming it — by the config key it came from when
    `origins` names one (then a ConfigError: the fix is in that file).
    """
    name = _Names(origins)
    patterns: list[str] = []
    first_local: Path | None = None
    for arg in args:
        target = arg.removeprefix(KO_SCHEME)
        if _is_local(target):
            path = (cwd / target.split("/...")[0]).resolve()
            if not path.exists():
                raise name.error(arg, f"no such directory ({path}). Give the directory of a `package main`, "
                                      "e.g. ./cmd/server, or its import path.")
            if not path.is_dir():
                raise name.error(arg, f"{path} is a file; give the directory of a `package main` instead.")
            first_local = first_local or path
            target = str(path) + ("/..." if target.endswith("/...") else "")
        patterns.append(target)

    # The module kodev runs in decides; only outside any module does the first path name one.
    run_dir = cwd if enclosing(cwd, "go.mod") or enclosing(cwd, "go.work") else (first_local or cwd)
    root = enclosing(run_dir, "go.work") or enclosing(run_dir, "go.mod")
    if root is None:
        raise GoError(f"{run_dir} is not inside a Go module (no go.mod here or above). Run kodev inside your "
                      "module, or give the path of a command in it.")
    for arg, pattern in zip(args, patterns, strict=True):
        if pattern.startswith("/") and not Path(pattern.split("/...")[0]).is_relative_to(root):
            raise name.error(arg, f"{pattern} is outside the module at {root}. kodev builds commands of the "
                                  "module (or go.work workspace) it runs in.")

    done = go.run(["list", "-e", f"-json={_LIST_FIELDS}", "--", *patterns], cwd=run_dir)
    packages = list(decode_json_stream(done.stdout)) if done.stdout.strip() else []
    if done.returncode != 0 and not packages:
        raise GoError(f"`go list` failed in {run_dir}:\n{done.stderr.strip()}")

    found: list[MainPackage] = []
    claimed: set[str] = set()
    for package in packages:
        # Matched by content, not by order: go list drops duplicates, and a "..." may expand to many.
        claims = [(arg, pattern) for arg, pattern in zip(args, patterns, strict=True) if _matches(pattern, package)]
        exact = next(((arg, pattern) for arg, pattern in claims if "..." not in pattern), None)
        arg, pattern = exact or (claims[0] if claims else (" ".join(args), "..."))
        claimed.update(a for a, _ in claims)
        command = _main_package(arg, package, wildcard=exact is None, go=go, run_dir=run_dir, name=name)
        if command is not None and command not in found:
            found.append(command)
    for arg, pattern in zip(args, patterns, strict=True):
        if arg not in claimed and "..." not in pattern:
            raise name.error(arg, "go list reported no package for it. Check the path; kodev needs the directory "
                                  "or import path of a `package main` in your module.")
    if not found:
        named = ", ".join(name(arg) for arg in args)
        raise GoError(f"{named}: no `package main` found (only library packages, or none, match). Give the "
                      "directory of a command, e.g. ./cmd/server, or a pattern that holds commands: ./cmd/...")
    return found


def selects(arg: str, command: MainPackage, cwd: Path) -> bool:
    """Whether `arg` (as `resolve_commands` takes it: a directory, an import path, a `...` pattern, with
    or without ko://) names `command`."""
    target = arg.removeprefix(KO_SCHEME)
    if _is_local(target):
        target = str((cwd / target.split("/...")[0]).resolve()) + ("/..." if target.endswith("/...") else "")
    return _matches(target, {"ImportPath": command.import_path, "Dir": str(command.dir)})


def is_pattern(arg: str) -> bool:
    """A `...` pattern, which may name many commands (or none)."""
    return "..." in arg


def _matches(pattern: str, package: dict[str, Any]) -> bool:
    """Whether go list printed `package` for `pattern` (an absolute directory or an import path, maybe
    with `...` wildcards, which match any string, and `x/...` matches `x` too, as in Go)."""
    import_path = str(package.get("ImportPath", ""))
    directory = Path(package["Dir"]).resolve() if package.get("Dir") else None
    if "..." not in pattern:
        return import_path == pattern or (pattern.startswith("/") and directory == Path(pattern))
    if pattern.startswith("/"):
        base = Path(pattern.split("/...")[0])
        return directory is not None and directory.is_relative_to(base)
    regex = re.escape(pattern).replace(r"/\.\.\.", "(/.*)?").replace(r"\.\.\.", ".*")
    return re.fullmatch(regex, import_path) is not None


def _main_package(arg: str, package: dict[str, Any], wildcard: bool, go: GoTool, run_dir: Path,
                  name: _Names) -> MainPackage | None:
    error = (package.get("Error") or {}).get("Err")
    if error:
        if wildcard and "matched no packages" in error:
            return None
        if "no required module provides package" in error:
            raise name.error(arg, _no_such_package(str(package.get("ImportPath", arg)), go, run_dir))
        raise name.error(arg, f"{error}. Check the path; kodev needs the directory or import path of a "
                              "`package main` in your module.")
    package_name = package.get("Name")
    if package_name != "main":
        if wildcard:
            return None
        raise name.error(arg, f"{package.get('ImportPath')} is `package {package_name}`, not `package main`, so "
                              "there is no command to build. Point kodev at a directory holding a main package.")
    module = package.get("Module") or {}
    if not module.get("Main"):
        raise name.error(arg, f"{package.get('ImportPath')} is not part of your module (it comes from "
                              f"{module.get('Path', 'the standard library')}). kodev builds commands of the "
                              "module it runs in.")
    return MainPackage(import_path=package["ImportPath"], dir=Path(package["Dir"]),
                       module_path=module["Path"], module_dir=Path(module["Dir"]))


def _no_such_package(import_path: str, go: GoTool, run_dir: Path) -> str:
    """kodev's message for an import path Go cannot find (rather than Go's advice to `go get` it)."""
    done = go.run(["list", "-m", "-f", "{{.Path}}\t{{.Dir}}"], cwd=run_dir)  # only on this error path
    modules = [line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line]
    for module_path, module_dir in modules:
        if import_path == module_path or import_path.startswith(module_path + "/"):
            missing = Path(module_dir, import_path.removeprefix(module_path).lstrip("/"))
            why = "holds no Go files" if missing.is_dir() else "does not exist"
            return (f"there is no package {import_path} in your module {module_path} ({missing} {why}). "
                    "Check the spelling, or give the directory of a `package main` instead, e.g. ./cmd/server.")
    names = ", ".join(path for path, _ in modules) or "your module"
    return (f"{import_path} is not a package of {names}, nor of a module it requires. kodev builds the "
            "commands of the module it runs in: give the directory of a `package main` (e.g. ./cmd/server) or "
            "its import path within the module.")


# --- the package graph, for deciding what a file change affects ------------------------------------

_GRAPH_FIELDS = ("ImportPath,Name,Dir,Module,Error,Standard,Deps,Imports,GoFiles,CgoFiles,EmbedFiles,"
                 "EmbedPatterns,IgnoredGoFiles,IgnoredOtherFiles,TestGoFiles,XTestGoFiles,SFiles,HFiles,SysoFiles")
MODULE_FILES = ("go.mod", "go.sum", "go.work", "go.work.sum")
VENDOR_DIR, VENDOR_MANIFEST = "vendor", "modules.txt"


def is_module_file(path: Path) -> bool:
    """go.mod, go.sum, go.work, go.work.sum, or a vendor/modules.txt: any of them may change every package."""
    return path.name in MODULE_FILES or (path.name == VENDOR_MANIFEST and path.parent.name == VENDOR_DIR)


@dataclass(frozen=True)
class GoPackage:
    """A non-standard package some command is built from. File names are relative to `dir`."""

    import_path: str
    dir: Path
    build_files: frozenset[str]  # GoFiles + CgoFiles + SFiles, HFiles, SysoFiles: they make the binary
    embed_files: frozenset[str]  # EmbedFiles, relative paths such as "static/site.css"
    embed_dirs: frozenset[str]  # embed patterns naming a directory: a new file under it is embedded
    excluded_files: frozenset[str]  # tests and files excluded by build constraints for the target
    imports: frozenset[str]


@dataclass(frozen=True)
class ModuleGraph:
    """What each command is built from, for the target platform. `roots` are the directories to watch."""

    packages: dict[str, GoPackage]
    deps: dict[str, frozenset[str]]  # command import path -> non-standard packages it is built from
    roots: tuple[Path, ...]
    by_dir: dict[Path, GoPackage] = field(default_factory=dict, compare=False, repr=False)
    listed: int = 0  # every package `go list -deps` named, standard library too: the most a cold build compiles

    def __post_init__(self) -> None:
        # An index, so that a change costs a few dict lookups, not a scan of every package.
        self.by_dir.update({package.dir: package for package in self.packages.values()})

    def package_in(self, directory: Path) -> GoPackage | None:
        return self.by_dir.get(directory)

    def packages_above(self, path: Path) -> Iterator[GoPackage]:
        """Packages whose directory holds `path` (at any depth): the ones that could embed it."""
        for directory in path.parents:
            package = self.by_dir.get(directory)
            if package is not None:
                yield package

    def dependents(self, import_path: str) -> set[str]:
        return {command for command, deps in self.deps.items() if import_path in deps}


def _watch_root(module: dict[str, Any], directory: Path) -> Path | None:
    """The main module, go.work members, local `replace` targets and vendored packages are watched; the
    module cache is not (read-only)."""
    if module.get("Main"):
        return Path(module["Dir"])
    replace = module.get("Replace") or {}
    if str(replace.get("Path", "")).startswith((".", "/")) and replace.get("Dir"):
        return Path(replace["Dir"])
    if not module.get("Dir"):  # in vendor mode Go reports no module directory, only the package's
        return vendor_dir(directory)
    return None


def vendor_dir(directory: Path) -> Path | None:
    """The `vendor/` (with its modules.txt) that holds `directory`, if it is a vendored package's."""
    for parent in directory.parents:
        if parent.name == VENDOR_DIR and (parent / VENDOR_MANIFEST).is_file():
            return parent
    return None


def load_graph(go: GoTool, commands: Sequence[MainPackage], cwd: Path) -> ModuleGraph:
    """`go list -deps -json` of the commands (with GOOS/GOARCH of the target) into a `ModuleGraph`."""
    done = go.run(["list", "-e", "-deps", f"-json={_GRAPH_FIELDS}", "--", *(c.import_path for c in commands)],
                  cwd=cwd)
    if done.returncode != 0 and not done.stdout.strip():
        raise GoError(f"`go list` failed in {cwd}:\n{done.stderr.strip()}")
    packages: dict[str, GoPackage] = {}
    deps: dict[str, frozenset[str]] = {}
    roots: dict[Path, None] = {c.module_dir: None for c in commands}
    wanted = {c.import_path for c in commands}
    listed = 0
    for raw in decode_json_stream(done.stdout):
        listed += 1
        if raw.get("Standard") or not raw.get("Dir"):
            continue
        root = _watch_root(raw.get("Module") or {}, Path(raw["Dir"]))
        if root is None:
            continue  # module cache: read-only, nothing to watch
        if not any(root.is_relative_to(known) for known in roots):  # a module's vendor/ is watched with it
            roots.setdefault(root, None)
        packages[raw["ImportPath"]] = _package(raw)
        if raw["ImportPath"] in wanted:
            deps[raw["ImportPath"]] = frozenset([raw["ImportPath"], *raw.get("Deps", ())])
    for command in deps:
        deps[command] = frozenset(p for p in deps[command] if p in packages)
    workspace = enclosing(cwd, "go.work")
    if workspace is not None:  # go.work may sit above every module: watch the file itself
        for name in ("go.work", "go.work.sum", f"{VENDOR_DIR}/{VENDOR_MANIFEST}"):
            if (workspace / name).is_file() and not any((workspace / name).is_relative_to(r) for r in roots):
                roots.setdefault(workspace / name, None)
    return ModuleGraph(packages=packages, deps=deps, roots=tuple(roots), listed=listed)


def _package(raw: dict[str, Any]) -> GoPackage:
    def names(*keys: str) -> frozenset[str]:
        return frozenset(name for key in keys for name in raw.get(key) or ())

    directory = Path(raw["Dir"])
    embed_dirs = frozenset(p.removeprefix("all:").rstrip("/") for p in raw.get("EmbedPatterns") or ()
                           if (directory / p.removeprefix("all:")).is_dir())
    return GoPackage(
        import_path=raw["ImportPath"], dir=directory,
        build_files=names("GoFiles", "CgoFiles", "SFiles", "HFiles", "SysoFiles"),
        embed_files=names("EmbedFiles"), embed_dirs=embed_dirs,
        excluded_files=names("IgnoredGoFiles", "IgnoredOtherFiles", "TestGoFiles", "XTestGoFiles"),
        imports=names("Imports"),
    )
