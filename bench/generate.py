"""Synthetic Go modules of a given shape, standard library only, for the benchmark and its tests.

The shape is exact, so that a table can say "20 commands, 200 packages, 1,000 files" and mean it:

- `commands` commands at `cmd/cNN` (one `main.go` each), every one a small HTTP server when given `-addr`,
  else printing its message and exiting;
- `packages` library packages (non-main): `internal/common` (imported by every command),
  `internal/shared` (imported by the first `shared_by` commands only — the package scenario 2 edits) and
  the rest split into one group per command, `internal/gNN/pNNNN`, each package importing the two before
  it in its group, so that every package is reachable from its command and the chains have some depth;
- `files` `.go` files in all (commands and packages together): one per command, the rest spread over the
  packages as evenly as possible (every package gets at least one).

`python -m bench.generate DIR --commands 20 --packages 200` writes one by hand.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

GO_VERSION = "1.22"
SHARED_FILE = "internal/shared/shared.go"
COMMON_FILE = "internal/common/common.go"
_TAG = re.compile(r'const Tag = "[^"]*"')


@dataclass(frozen=True)
class Shape:
    """What `generate` wrote: counts as promised, and the paths the benchmark edits."""

    root: Path
    module: str
    commands: tuple[str, ...]  # import paths of the commands, cmd/c00 first
    command_dirs: tuple[str, ...]  # "./cmd/c00", ... relative to root
    packages: int  # library (non-main) packages
    files: int  # .go files in all
    shared_by: int  # how many commands import internal/shared

    @property
    def shared_file(self) -> Path:
        return self.root / SHARED_FILE

    @property
    def common_file(self) -> Path:
        return self.root / COMMON_FILE

    @property
    def affected(self) -> tuple[str, ...]:
        """The commands a change to internal/shared affects."""
        return self.commands[: self.shared_by]


def set_shared_tag(shape_root: Path, tag: str) -> None:
    """Edit internal/shared: one line changes, and with it the binaries of the commands that import it."""
    path = shape_root / SHARED_FILE
    text = path.read_text()
    new, count = _TAG.subn(f'const Tag = "{tag}"', text)
    if count != 1:
        raise ValueError(f"{path}: no Tag constant to edit")
    path.write_text(new)


def generate(root: Path, *, commands: int = 20, packages: int = 200, files: int | None = None,
             shared_by: int = 3, module: str = "example.com/gen", servers: bool = True) -> Shape:
    """Write a module of this shape into `root` (created; must be empty or missing)."""
    if commands < 1:
        raise ValueError("commands must be at least 1")
    if packages < 2 + commands:
        raise ValueError(f"packages must be at least {2 + commands} (common, shared, one per command group)")
    if not 0 < shared_by <= commands:
        raise ValueError("shared_by must be between 1 and commands")
    files = files if files is not None else commands + 2 * packages
    if files < commands + packages:
        raise ValueError(f"files must be at least commands + packages = {commands + packages}")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    (root / "go.mod").write_text(f"module {module}\n\ngo {GO_VERSION}\n")

    # How many files each library package gets: at least one, the remainder spread round-robin.
    library_files = files - commands
    per_package = [library_files // packages] * packages
    for index in range(library_files % packages):
        per_package[index] += 1

    written = 0
    # Package 0: common, package 1: shared, then the groups.
    written += _library(root / "internal/common", "common", [], per_package[0], module, "Name",
                        'const Name = "common"\n')
    written += _library(root / "internal/shared", "shared", [], per_package[1], module, "Tag",
                        'const Tag = "v0"\n')
    groups: list[list[str]] = [[] for _ in range(commands)]
    for index in range(packages - 2):
        group = index % commands
        rel = f"internal/g{group:02d}/p{index:04d}"
        deps = [f"{module}/{p}" for p in groups[group][-2:]]
        if not groups[group]:
            deps.append(f"{module}/internal/common")
        written += _library(root / rel, f"p{index:04d}", deps, per_package[2 + index], module, None, "")
        groups[group].append(rel)

    command_paths = []
    command_dirs = []
    for number in range(commands):
        name = f"c{number:02d}"
        top = groups[number][-1]
        shared = number < shared_by
        (root / "cmd" / name).mkdir(parents=True)
        (root / "cmd" / name / "main.go").write_text(_command(name, module, top, shared, servers))
        written += 1
        command_paths.append(f"{module}/cmd/{name}")
        command_dirs.append(f"./cmd/{name}")
    assert written == files, (written, files)
    return Shape(root=root, module=module, commands=tuple(command_paths), command_dirs=tuple(command_dirs),
                 packages=packages, files=files, shared_by=shared_by)


def _library(directory: Path, name: str, deps: list[str], count: int, module: str, exported: str | None,
             extra: str) -> int:
    """A library package of `count` files; file 0 holds Sum (which calls its deps' Sum) and the imports."""
    directory.mkdir(parents=True)
    aliases = [f"d{i}" for i in range(len(deps))]
    imports = "".join(f'\t{alias} "{dep}"\n' for alias, dep in zip(aliases, deps, strict=True))
    calls = "".join(f"\ttotal += {alias}.Sum(n + {i})\n" for i, alias in enumerate(aliases))
    helpers = "".join(f"\ttotal += f{k}(n)\n" for k in range(1, count))
    head = f"import (\n\t\"strconv\"\n{imports})\n\n"
    first = (f"// Package {name} is generated by bench/generate.py.\npackage {name}\n\n{head}{extra}\n"
             f"// Sum mixes n with this package's and its dependencies' work.\n"
             f"func Sum(n int) int {{\n\ttotal := len(strconv.Itoa(n))\n{calls}{helpers}\treturn total\n}}\n")
    (directory / f"{name}.go").write_text(first)
    for k in range(1, count):
        body = (f"package {name}\n\n"
                f"func f{k}(n int) int {{\n"
                f"\tx := n*{k + 7} + {k}\n"
                f"\tfor i := 0; i < 3; i++ {{\n\t\tx = (x*31 + i) % 1000003\n\t}}\n"
                f"\treturn x\n}}\n")
        (directory / f"f{k}.go").write_text(body)
    return count


def _command(name: str, module: str, top: str, shared: bool, servers: bool) -> str:
    shared_import = f'\t"{module}/internal/shared"\n' if shared else ""
    tag = ' + " " + shared.Tag' if shared else ""
    server_imports = '\t"log"\n\t"net/http"\n' if servers else ""
    serve = (
        '\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {\n'
        "\t\tfmt.Fprintln(w, message())\n\t})\n"
        f'\tlog.Printf("{name} listening on %s", *addr)\n'
        "\tlog.Fatal(http.ListenAndServe(*addr, nil))\n"
    ) if servers else '\tfmt.Println("serving needs a build with servers", *addr)\n'
    return (
        f"// Command {name} is generated by bench/generate.py.\n"
        "package main\n\n"
        "import (\n\t\"flag\"\n\t\"fmt\"\n" + server_imports + "\n"
        f'\t"{module}/internal/common"\n{shared_import}\ttop "{module}/{top}"\n)\n\n'
        f'func message() string {{\n\treturn fmt.Sprintf("{name} %d %s", top.Sum(1), common.Name){tag}\n}}\n\n'
        "func main() {\n"
        '\taddr := flag.String("addr", "", "serve the message on this address")\n'
        "\tflag.Parse()\n"
        '\tif *addr == "" {\n\t\tfmt.Println(message())\n\t\treturn\n\t}\n'
        f"{serve}}}\n"
    )


def count_shape(root: Path) -> tuple[int, int, int]:
    """(commands, library packages, .go files) actually on disk under `root`."""
    go_files = [p for p in root.rglob("*.go")]
    dirs = {p.parent for p in go_files}
    commands = {d for d in dirs if "package main" in "".join(p.read_text() for p in d.glob("*.go"))}
    return len(commands), len(dirs - commands), len(go_files)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--packages", type=int, default=200)
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--shared-by", type=int, default=3)
    args = parser.parse_args()
    shape = generate(args.dir, commands=args.commands, packages=args.packages, files=args.files,
                     shared_by=args.shared_by)
    print(f"{shape.root}: {len(shape.commands)} commands, {shape.packages} packages, {shape.files} files")


if __name__ == "__main__":
    main()
