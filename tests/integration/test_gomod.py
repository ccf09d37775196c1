"""The 'know the module' stage against the real `go`: which packages a set of paths means, and the package
graph of a vendored module (no Docker needed).

The vendored module is a standard-library-only fake dependency under `vendor/` with its `modules.txt`, and
go.mod's `require` matching the `## explicit` line, so Go uses it offline (`-mod=vendor` is the default
when vendor/ exists and go >= 1.14).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kodev.errors import GoError
from kodev.gomod import ModuleGraph, load_graph, resolve_commands
from kodev.gotool import GoTool, find_go
from tests.conftest import EXAMPLES
from tests.examples import copy_example

HELLO, SERVER = "example.com/hello/cmd/hello", "example.com/hello/cmd/server"
DEP = "example.com/dep/greet"


@pytest.fixture
def go(go_binary: str) -> GoTool:
    return find_go(go_binary, {"GOFLAGS": "", "GOPROXY": "off"})


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    """examples/hello as committed (no Docker needed, unlike the shared fixture of the same name)."""
    return copy_example("hello", tmp_path / "hello")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def vendored_module(root: Path, version: str = "v1.0.0") -> Path:
    """app: cmd/server imports the vendored example.com/dep/greet; cmd/other imports nothing of it."""
    app = root / "app"
    write(app / "go.mod", f"module example.com/app\n\ngo 1.22\n\nrequire example.com/dep {version}\n")
    write(app / "vendor" / "modules.txt", f"# example.com/dep {version}\n## explicit; go 1.22\n{DEP}\n")
    write(app / "vendor" / "example.com" / "dep" / "greet" / "greet.go",
          'package greet\n\n// Text is what the server serves.\nfunc Text() string { return "vendored" }\n')
    write(app / "vendor" / "example.com" / "dep" / "greet" / "greet.s", "// an assembly file\n")
    write(app / "cmd" / "server" / "main.go",
          'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/dep/greet"\n)\n\n'
          "func main() { fmt.Println(greet.Text()) }\n")
    write(app / "cmd" / "other" / "main.go", "package main\n\nfunc main() {}\n")
    return app


# --- resolving paths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["./cmd/...", "./internal/greeting"], ["./internal/greeting", "./cmd/..."],
                                  ["example.com/hello/...", "./internal/greeting"],
                                  ["./cmd/...", "example.com/hello/internal/greeting"]])
def test_a_non_main_path_is_refused_whatever_its_place(go: GoTool, hello: Path, args: list[str]) -> None:
    """Regression: after a `...` pattern every later package used to be taken as one of its matches, so
    the non-main path was silently dropped."""
    non_main = next(arg for arg in args if "greeting" in arg)
    with pytest.raises(GoError, match=f"^{non_main}: .*not `package main`"):
        resolve_commands(go, args, hello)


@pytest.mark.parametrize("args", [["./cmd/...", "./cmd/server"], ["./cmd/server", "./..."],
                                  ["./cmd/hello", str(EXAMPLES / "hello"), "./cmd/..."]])
def test_overlapping_patterns_give_each_command_once(go: GoTool, hello: Path, args: list[str]) -> None:
    args = [a.replace(str(EXAMPLES / "hello"), str(hello) + "/cmd/server") for a in args]
    found = resolve_commands(go, args, hello)
    assert sorted(c.import_path for c in found) == [HELLO, SERVER]


def test_wildcards_keep_only_main_packages(go: GoTool, hello: Path) -> None:
    assert [c.import_path for c in resolve_commands(go, ["example.com/hello/..."], hello)] == [HELLO, SERVER]


@pytest.mark.parametrize("path", ["example.com/hello/cmd/nope", "ko://example.com/hello/cmd/nope",
                                  "example.com/hello/cmd"])
def test_mistyped_import_path_in_the_module(go: GoTool, hello: Path, path: str) -> None:
    with pytest.raises(GoError) as caught:
        resolve_commands(go, [path], hello)
    message = str(caught.value)
    assert message.startswith(f"{path}: there is no package example.com/hello/cmd")
    assert "in your module example.com/hello" in message and "go get" not in message
    assert str(hello / "cmd") in message


def test_import_path_of_no_module_at_all(go: GoTool, hello: Path) -> None:
    with pytest.raises(GoError) as caught:
        resolve_commands(go, ["example.org/elsewhere/cmd/x"], hello)
    assert "example.org/elsewhere/cmd/x is not a package of example.com/hello" in str(caught.value)
    assert "go get" not in str(caught.value)


# --- the graph of a vendored module ----------------------------------------------------------------------

def graph_of(go: GoTool, app: Path) -> ModuleGraph:
    return load_graph(go, resolve_commands(go, ["./cmd/..."], app), app)


def test_vendored_packages_are_in_the_graph(go: GoTool, tmp_path: Path) -> None:
    app = vendored_module(tmp_path)
    graph = graph_of(go, app)
    assert graph.roots == (app,)  # vendor/ is watched as part of the module
    vendored = graph.packages[DEP]
    assert vendored.dir == app / "vendor" / "example.com" / "dep" / "greet"
    assert vendored.build_files == {"greet.go", "greet.s"}  # assembly is built without cgo too
    assert graph.dependents(DEP) == {"example.com/app/cmd/server"}


def test_a_workspace_vendor_directory_is_watched(go: GoTool, tmp_path: Path) -> None:
    """`go work vendor` puts vendor/ next to go.work, outside every module: it must be a root."""
    app = vendored_module(tmp_path)
    shutil.move(str(app / "vendor"), str(tmp_path / "vendor"))
    write(tmp_path / "go.work", "go 1.22\n\nuse ./app\n")
    modules = (tmp_path / "vendor" / "modules.txt").read_text()
    write(tmp_path / "vendor" / "modules.txt", f"## workspace\n{modules}# example.com/app\n## workspace\n")
    graph = graph_of(go, app)
    assert graph.packages[DEP].dir == tmp_path / "vendor" / "example.com" / "dep" / "greet"
    assert tmp_path / "vendor" in graph.roots and tmp_path / "go.work" in graph.roots
    assert graph.dependents(DEP) == {"example.com/app/cmd/server"}


def test_inconsistent_vendoring_is_an_error_naming_it(go: GoTool, tmp_path: Path) -> None:
    """A go.mod bump without `go mod vendor`: the graph cannot load, and Go's message says what to run."""
    app = vendored_module(tmp_path)
    write(app / "go.mod", "module example.com/app\n\ngo 1.22\n\nrequire example.com/dep v1.1.0\n")
    with pytest.raises(GoError, match="inconsistent vendoring"):
        load_graph(go, resolve_commands(go, ["./cmd/other"], app), app)
