"""The pure parts of the watch loop: scanning a Go file's imports, and turning raw file events into changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kodev import events
from kodev.affected import FileChange
from kodev.coalesce import Inbox
from kodev.events import FilesChanged, ServiceExited
from kodev.gomod import GoPackage, ModuleGraph
from kodev.gosource import imports_of


def go_file(tmp_path: Path, text: str, name: str = "main.go") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- imports_of ----------------------------------------------------------------------------------------

def test_single_import(tmp_path: Path) -> None:
    assert imports_of(go_file(tmp_path, 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println() }\n')) == {"fmt"}


def test_several_single_imports(tmp_path: Path) -> None:
    source = 'package main\n\nimport "fmt"\nimport "os"\nimport str "strings"\n\nfunc main() {}\n'
    assert imports_of(go_file(tmp_path, source)) == {"fmt", "os", "strings"}


def test_grouped_imports_with_aliases(tmp_path: Path) -> None:
    source = """package main

import (
\t"fmt"
\tnethttp "net/http"
\t. "example.com/m/internal/dot"
\t_ "embed"
\t_ "example.com/m/internal/register"
\tv2 "example.com/lib/v2"
\tmy_alias "example.com/m/internal/greeting"
)

func main() {}
"""
    assert imports_of(go_file(tmp_path, source)) == {
        "fmt", "net/http", "example.com/m/internal/dot", "embed", "example.com/m/internal/register",
        "example.com/lib/v2", "example.com/m/internal/greeting"}


def test_single_dot_and_blank_imports(tmp_path: Path) -> None:
    source = 'package main\n\nimport . "math"\nimport _ "time/tzdata"\n\nfunc main() {}\n'
    assert imports_of(go_file(tmp_path, source)) == {"math", "time/tzdata"}


def test_several_import_blocks_and_cgo(tmp_path: Path) -> None:
    source = 'package main\n\n// #include <stdio.h>\nimport "C"\n\nimport (\n\t"fmt"\n)\n\nimport (\n\t"os"\n)\n'
    assert imports_of(go_file(tmp_path, source)) == {"C", "fmt", "os"}


def test_commented_out_imports_are_not_imports(tmp_path: Path) -> None:
    source = """// Package main does things.
// import "fake/in/doc"
package main

import (
\t"fmt" // printing
\t// "os"
\t"strings"
)

// import "fake/after"
func main() {
\ts := "import \\"fake/in/string\\""
\tfmt.Println(strings.ToUpper(s))
}
"""
    assert imports_of(go_file(tmp_path, source)) == {"fmt", "strings"}


def test_comment_with_parentheses_inside_an_import_block(tmp_path: Path) -> None:
    # A ')' in a comment does not end the block: every import after it still counts.
    source = """package main

import (
\t"fmt" // Println (and friends)
\t"os"
\t"example.com/m/internal/greeting"
)

func main() {}
"""
    assert imports_of(go_file(tmp_path, source)) == {"fmt", "os", "example.com/m/internal/greeting"}


def test_no_imports(tmp_path: Path) -> None:
    assert imports_of(go_file(tmp_path, "package main\n\nfunc main() {}\n")) == set()


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    assert imports_of(tmp_path / "gone.go") == set()
    assert imports_of(tmp_path) == set()  # a directory


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.go"
    path.write_bytes(b'package main\n\n// caf\xe9\nimport "fmt"\n')
    assert imports_of(path) == {"fmt"}


# --- events.normalize ---------------------------------------------------------------------------------------
# It uses only its arguments (and the file system), so it runs unbound, with no session and no Docker.

@pytest.fixture
def module(tmp_path: Path) -> tuple[Path, ModuleGraph]:
    pkg = tmp_path / "internal" / "greeting"
    pkg.mkdir(parents=True)
    (pkg / "greeting.go").write_text(
        'package greeting\n\nimport "strings"\n\nfunc M() string { return strings.ToUpper("x") }\n')
    (pkg / "greeting_windows.go").write_text('//go:build windows\n\npackage greeting\n\nimport "syscall"\n')
    (pkg / "greeting_test.go").write_text('package greeting\n\nimport "testing"\n\nfunc TestM(t *testing.T) {}\n')
    package = GoPackage(
        import_path="example.com/m/internal/greeting", dir=pkg,
        build_files=frozenset({"greeting.go"}), embed_files=frozenset(), embed_dirs=frozenset(),
        excluded_files=frozenset({"greeting_windows.go", "greeting_test.go"}), imports=frozenset({"strings"}))
    graph = ModuleGraph(packages={package.import_path: package},
                        deps={"example.com/m/cmd/x": frozenset({package.import_path})}, roots=(tmp_path,))
    return pkg, graph


def normalize(raw: set[tuple[str, str]], graph: ModuleGraph) -> list[FileChange]:
    return list(events.normalize(raw, graph))


def test_known_file_that_exists_is_modified(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    assert normalize({("modified", str(path))}, graph) == [FileChange(path, "modified", False)]


@pytest.mark.parametrize("events", [
    {"added"},  # editor wrote a new file over the old name
    {"deleted", "added"},  # delete-then-create
    {"deleted"},  # the event said deleted, but the file is back by the time we look (atomic save)
    {"deleted", "modified", "added"},
])
def test_final_state_decides_for_a_known_file(module: tuple[Path, ModuleGraph], events: set[str]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    changes = normalize({(event, str(path)) for event in events}, graph)
    assert changes == [FileChange(path, "modified", False)]  # one change per path


def test_unknown_file_that_exists_is_added(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "extra.go"
    path.write_text("package greeting\n")
    assert normalize({("added", str(path))}, graph) == [FileChange(path, "added", False)]
    # even if the watcher called it modified (it was created and written in one batch)
    assert normalize({("modified", str(path))}, graph) == [FileChange(path, "added", False)]


def test_file_that_is_gone_is_deleted(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    path.unlink()
    assert normalize({("deleted", str(path))}, graph) == [FileChange(path, "deleted", False)]
    # a file created and removed within one batch is deleted too
    temp = pkg / "greeting.go.tmp123"
    assert normalize({("added", str(temp)), ("deleted", str(temp))}, graph) == [FileChange(temp, "deleted", False)]


def test_excluded_file_is_known(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting_windows.go"
    [change] = normalize({("modified", str(path))}, graph)
    assert change.path == path
    assert change.change == "modified"


def test_new_import_is_detected(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    path.write_text('package greeting\n\nimport (\n\t"strings"\n\t"example.com/m/internal/newpkg"\n)\n')
    assert normalize({("modified", str(path))}, graph) == [FileChange(path, "modified", True)]


def test_same_imports_regrouped_is_no_new_import(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    path.write_text('package greeting\n\nimport (\n\tstr "strings"\n)\n\nfunc M() string { return str.ToUpper("y") }\n')
    assert normalize({("modified", str(path))}, graph) == [FileChange(path, "modified", False)]


def test_removed_import_is_no_new_import(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    path.write_text('package greeting\n\nfunc M() string { return "x" }\n')
    assert normalize({("modified", str(path))}, graph) == [FileChange(path, "modified", False)]


def test_cgo_import_is_not_new(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    path = pkg / "greeting.go"
    path.write_text('package greeting\n\n// int x;\nimport "C"\nimport "strings"\n')
    assert normalize({("modified", str(path))}, graph) == [FileChange(path, "modified", False)]


def test_new_import_in_added_file_is_left_to_the_refresh(module: tuple[Path, ModuleGraph]) -> None:
    # An added file refreshes the graph anyway; new_imports is only about modified files.
    pkg, graph = module
    path = pkg / "extra.go"
    path.write_text('package greeting\n\nimport "os"\n')
    assert normalize({("added", str(path))}, graph) == [FileChange(path, "added", False)]


def test_non_go_files(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    readme = pkg / "README.md"
    readme.write_text("# greeting\n")
    outside = pkg.parent.parent / "go.mod"
    outside.write_text("module example.com/m\n\ngo 1.22\n")
    changes = normalize({("modified", str(readme)), ("modified", str(outside))}, graph)
    assert [c.path for c in changes] == sorted([readme, outside])
    assert all(c.change != "deleted" and not c.new_imports for c in changes)


def test_many_paths_one_change_each_sorted(module: tuple[Path, ModuleGraph]) -> None:
    pkg, graph = module
    a, b = pkg / "greeting.go", pkg / "greeting_test.go"
    gone = pkg / "gone.go"
    raw = {("modified", str(b)), ("added", str(a)), ("modified", str(a)), ("deleted", str(gone)), ("modified", str(b))}
    changes = normalize(raw, graph)
    assert [c.path for c in changes] == sorted([a, b, gone])
    assert {c.path: c.change for c in changes} == {a: "modified", b: "modified", gone: "deleted"}


# --- coalesce.Inbox ------------------------------------------------------------------------------------

def test_the_inbox_counts_the_batches_of_file_changes_waiting_in_it() -> None:
    inbox = Inbox()
    inbox.put(ServiceExited("s", "c", 1, ()))
    assert inbox.files_waiting == 0
    inbox.put(FilesChanged(frozenset({("modified", "/m/a.go")})))
    inbox.put(FilesChanged(frozenset({("modified", "/m/b.go")})))
    assert inbox.files_waiting == 2
    assert isinstance(inbox.get(timeout=0), ServiceExited) and inbox.files_waiting == 2
    inbox.get(timeout=0)
    assert inbox.files_waiting == 1
    inbox.get(timeout=0)
    assert inbox.files_waiting == 0
