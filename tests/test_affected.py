"""The 'decide' stage on a hand-recorded package graph: no Go, no Docker, no file system."""

from __future__ import annotations

from pathlib import Path

import pytest

from kodev.affected import Decision, FileChange, decide, is_noise
from kodev.gomod import GoPackage, ModuleGraph

# A module like examples/hello, plus a package with embedded files and a local `replace` target.
#   /src/hello                     main module (root)
#     cmd/server                   main, imports internal/greeting and internal/assets; has kodata/
#     cmd/hello                    main, imports internal/greeting and example.com/lib
#     internal/greeting            shared; greeting_windows.go excluded for linux
#     internal/assets              //go:embed static templates/index.tmpl
#   /src/lib                       `replace example.com/lib => ../lib` (a second root)
ROOT = Path("/src/hello")
LIB_ROOT = Path("/src/lib")
SERVER = "example.com/hello/cmd/server"
HELLO = "example.com/hello/cmd/hello"
GREETING = "example.com/hello/internal/greeting"
ASSETS = "example.com/hello/internal/assets"
LIB = "example.com/lib"
NOTHING = Decision(frozenset(), frozenset(), False)  # nothing to build, re-image or refresh
KODATA = ROOT / "cmd/server/kodata"
LINKED = ROOT / "assets/banner.txt"  # cmd/server/kodata/banner.txt is a symlink to it
LINKED_DIR = ROOT / "shared/static"  # cmd/server/kodata/static is a symlink to it


def package(import_path: str, directory: Path, build: set[str], *, embed: set[str] | None = None,
            embed_dirs: set[str] | None = None, excluded: set[str] | None = None,
            imports: set[str] | None = None) -> GoPackage:
    return GoPackage(import_path=import_path, dir=directory, build_files=frozenset(build),
                     embed_files=frozenset(embed or ()), embed_dirs=frozenset(embed_dirs or ()),
                     excluded_files=frozenset(excluded or ()), imports=frozenset(imports or ()))


def make_graph(extra_greeting_files: set[str] | None = None) -> ModuleGraph:
    packages = {
        SERVER: package(SERVER, ROOT / "cmd/server", {"main.go"}, excluded={"main_test.go"},
                        imports={"fmt", "net/http", GREETING, ASSETS}),
        HELLO: package(HELLO, ROOT / "cmd/hello", {"main.go"}, imports={"fmt", GREETING, LIB}),
        GREETING: package(GREETING, ROOT / "internal/greeting",
                          {"greeting.go", "greeting_unix.go", *(extra_greeting_files or ())},
                          excluded={"greeting_windows.go", "greeting_test.go"}, imports={"strings"}),
        ASSETS: package(ASSETS, ROOT / "internal/assets", {"assets.go"},
                        embed={"static/site.css", "static/img/logo.svg", "templates/index.tmpl"},
                        embed_dirs={"static"}, imports={"embed"}),
        LIB: package(LIB, LIB_ROOT, {"lib.go"}, imports={"strconv"}),
    }
    deps = {
        SERVER: frozenset({SERVER, GREETING, ASSETS}),
        HELLO: frozenset({HELLO, GREETING, LIB}),
    }
    return ModuleGraph(packages=packages, deps=deps, roots=(ROOT, LIB_ROOT))


GRAPH = make_graph()
SOURCES = {SERVER: frozenset({KODATA, LINKED, LINKED_DIR}), HELLO: frozenset({ROOT / "cmd/hello/kodata"})}


def run(*changes: FileChange, graph: ModuleGraph = GRAPH) -> Decision:
    return decide(changes, graph, SOURCES)


def mod(path: Path | str, new_imports: bool = False) -> FileChange:
    return FileChange(ROOT / path, "modified", new_imports)


# --- Go files ------------------------------------------------------------------------------------------

def test_shared_package_affects_both_commands() -> None:
    decision = run(mod("internal/greeting/greeting.go"))
    assert decision.rebuild == {SERVER, HELLO}
    assert decision.reimage == set()
    assert not decision.refresh_graph


@pytest.mark.parametrize(("path", "command"), [("cmd/server/main.go", SERVER), ("cmd/hello/main.go", HELLO)])
def test_one_commands_file_affects_only_it(path: str, command: str) -> None:
    decision = run(mod(path))
    assert decision == Decision(frozenset({command}), frozenset(), False)


def test_package_used_by_one_command_only() -> None:
    assert run(mod("internal/assets/assets.go")).rebuild == {SERVER}


def test_file_of_a_replace_target_outside_the_main_module() -> None:
    decision = run(FileChange(LIB_ROOT / "lib.go", "modified"))
    assert decision.rebuild == {HELLO}
    assert not decision.refresh_graph


def test_several_changes_are_one_decision() -> None:
    decision = run(mod("cmd/server/main.go"), mod("cmd/hello/main.go"), mod("README.md"))
    assert decision.rebuild == {SERVER, HELLO}


# --- nothing to do -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "internal/greeting/greeting_test.go",
    "cmd/server/main_test.go",
    "cmd/server/new_test.go",  # even a new test file needs no graph refresh
    "README.md",
    "internal/greeting/README.md",
    "internal/greeting/doc.txt",
    "internal/greeting/.greeting.go.swp",
    "internal/greeting/.greeting.go.swx",
    "internal/greeting/greeting.go~",
    "internal/greeting/.#greeting.go",
    "internal/greeting/4913",
    "cmd/server/kodata/.index.html.swp",
    "cmd/server/kodata/index.html~",
    ".git/HEAD",
    ".git/index",
    ".git/objects/ab/cdef0123",
    "internal/greeting/.git/config",
])
@pytest.mark.parametrize("change", ["added", "modified", "deleted"])
def test_changes_that_affect_nothing(path: str, change: str) -> None:
    decision = run(FileChange(ROOT / path, change))  # type: ignore[arg-type]
    assert decision == NOTHING, decision


@pytest.mark.parametrize("name", [".main.go.swp", "main.go~", ".#main.go", "4913", "main.go.swp"])
def test_editor_files_are_noise(name: str) -> None:
    assert is_noise(ROOT / "cmd/server" / name)


@pytest.mark.parametrize("path", ["cmd/server/main.go", "cmd/server/kodata/index.html", "go.mod"])
def test_real_files_are_not_noise(path: str) -> None:
    assert not is_noise(ROOT / path)


def test_file_excluded_by_build_constraints_refreshes_the_graph_only() -> None:
    decision = run(mod("internal/greeting/greeting_windows.go"))
    assert decision.rebuild == set()
    assert decision.reimage == set()
    assert decision.refresh_graph  # the edit may change its constraint: let Go re-decide


def test_file_outside_every_package_and_root() -> None:
    assert run(FileChange(Path("/elsewhere/main.go"), "modified")) == NOTHING


# --- the graph changes ---------------------------------------------------------------------------------

def test_new_go_file_in_a_known_package_refreshes_the_graph() -> None:
    added = FileChange(ROOT / "internal/greeting/extra.go", "added")
    first = run(added)
    assert first.refresh_graph
    assert first.rebuild == set()  # not known to be built until Go says so
    # What the loop does next: refresh the graph, decide again on the same changes.
    second = run(added, graph=make_graph({"extra.go"}))
    assert second.rebuild == {SERVER, HELLO}


def test_new_go_file_in_a_new_package_directory_refreshes_the_graph() -> None:
    # The issue: "The graph is refreshed when .go files are added or removed". A package that is imported
    # before it exists (the import is added first, the directory second) is only found by a refresh.
    decision = run(FileChange(ROOT / "internal/newpkg/newpkg.go", "added"))
    assert decision.refresh_graph


def test_deleted_build_file_rebuilds_and_refreshes() -> None:
    decision = run(FileChange(ROOT / "internal/greeting/greeting_unix.go", "deleted"))
    assert decision.rebuild == {SERVER, HELLO}
    assert decision.refresh_graph


def test_added_build_file_rebuilds_and_refreshes() -> None:
    # A file the graph already lists reported as added (delete-then-create that the loop did not merge).
    decision = run(FileChange(ROOT / "cmd/hello/main.go", "added"))
    assert decision.rebuild == {HELLO}
    assert decision.refresh_graph


def test_new_import_rebuilds_and_refreshes() -> None:
    decision = run(mod("cmd/hello/main.go", new_imports=True))
    assert decision.rebuild == {HELLO}
    assert decision.refresh_graph


def test_plain_edit_does_not_refresh() -> None:
    assert not run(mod("cmd/hello/main.go")).refresh_graph


# --- kodata --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    KODATA / "index.html",
    KODATA / "static/site.css",
    KODATA,  # the directory itself (replaced, removed)
    LINKED,  # a file a kodata symlink resolves to
    LINKED_DIR,  # a directory a kodata symlink resolves to
    LINKED_DIR / "app.js",  # a file under it
])
@pytest.mark.parametrize("change", ["added", "modified", "deleted"])
def test_kodata_change_reimages_without_compiling(path: Path, change: str) -> None:
    decision = run(FileChange(path, change))  # type: ignore[arg-type]
    assert decision.reimage == {SERVER}
    assert decision.rebuild == set()
    assert not decision.refresh_graph


def test_sibling_of_a_kodata_source_is_not_kodata() -> None:
    assert run(mod("assets/banner.txt.orig")) == NOTHING
    assert run(mod("assets/other.txt")) == NOTHING
    assert run(mod("cmd/server/kodata2/x.html")) == NOTHING


def test_rebuild_wins_over_reimage() -> None:
    decision = run(mod("internal/greeting/greeting.go"), FileChange(KODATA / "index.html", "modified"))
    assert decision.rebuild == {SERVER, HELLO}
    assert decision.reimage == set()  # a rebuild makes a new image anyway


def test_kodata_of_one_command_and_code_of_another() -> None:
    decision = run(mod("cmd/hello/main.go"), FileChange(KODATA / "index.html", "modified"))
    assert decision.rebuild == {HELLO}
    assert decision.reimage == {SERVER}


# --- embedded files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", ["static/site.css", "static/img/logo.svg", "templates/index.tmpl"])
def test_embedded_file_edit_rebuilds_its_commands(rel: str) -> None:
    decision = run(mod(f"internal/assets/{rel}"))
    assert decision.rebuild == {SERVER}
    assert not decision.refresh_graph


def test_new_file_in_an_embedded_directory_rebuilds_and_refreshes() -> None:
    decision = run(FileChange(ROOT / "internal/assets/static/new/app.js", "added"))
    assert decision.rebuild == {SERVER}
    assert decision.refresh_graph  # EmbedFiles must learn about it


def test_deleted_embedded_file_rebuilds_and_refreshes() -> None:
    decision = run(FileChange(ROOT / "internal/assets/templates/index.tmpl", "deleted"))
    assert decision.rebuild == {SERVER}
    assert decision.refresh_graph


def test_file_next_to_embedded_ones_but_not_embedded() -> None:
    assert run(FileChange(ROOT / "internal/assets/templates/other.tmpl", "added")) == NOTHING
    assert run(mod("internal/assets/notes.txt")) == NOTHING


# --- module files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [ROOT / "go.mod", ROOT / "go.sum", ROOT / "go.work", ROOT / "go.work.sum",
                                  LIB_ROOT / "go.mod", LIB_ROOT / "go.sum"])
@pytest.mark.parametrize("change", ["added", "modified", "deleted"])
def test_module_files_under_a_root_affect_every_command(path: Path, change: str) -> None:
    decision = run(FileChange(path, change))  # type: ignore[arg-type]
    assert decision.rebuild == {SERVER, HELLO}
    assert decision.refresh_graph


@pytest.mark.parametrize("path", [Path("/src/go.mod"), Path("/src/other/go.sum"), Path("/go.work"),
                                  Path("/src/hello-old/go.mod")])
def test_module_files_outside_every_root_affect_nothing(path: Path) -> None:
    assert run(FileChange(path, "modified")) == NOTHING


# --- vendored packages, assembly, vendor/modules.txt -----------------------------------------------

VENDORED = "example.com/dep/zap"  # vendor/example.com/dep/zap, imported by the server only
FAST = "example.com/hello/internal/fast"  # fast.go + fast_amd64.s + a .syso, imported by hello only


def vendored_graph() -> ModuleGraph:
    base = make_graph()
    packages = {**base.packages,
                VENDORED: package(VENDORED, ROOT / "vendor/example.com/dep/zap", {"global.go", "level.go"},
                                  excluded={"global_test.go"}),
                FAST: package(FAST, ROOT / "internal/fast", {"fast.go", "fast_amd64.s", "fast.h", "rsrc.syso"},
                              excluded={"fast_arm64.s"})}
    deps = {SERVER: base.deps[SERVER] | {VENDORED}, HELLO: base.deps[HELLO] | {FAST}}
    return ModuleGraph(packages=packages, deps=deps, roots=base.roots)


def test_vendored_package_edit_rebuilds_exactly_its_dependents() -> None:
    decision = run(mod("vendor/example.com/dep/zap/global.go"), graph=vendored_graph())
    assert decision == Decision(frozenset({SERVER}), frozenset(), False)
    new_file = run(FileChange(ROOT / "vendor/example.com/dep/zap/sugar.go", "added"), graph=vendored_graph())
    assert new_file.refresh_graph and not new_file.rebuild
    assert run(mod("vendor/example.com/dep/zap/global_test.go"), graph=vendored_graph()) == NOTHING
    assert run(mod("vendor/example.com/dep/zap/README.md"), graph=vendored_graph()) == NOTHING


@pytest.mark.parametrize("change", ["added", "modified", "deleted"])
def test_vendor_modules_txt_is_a_module_file(change: str) -> None:
    decision = run(FileChange(ROOT / "vendor/modules.txt", change), graph=vendored_graph())  # type: ignore[arg-type]
    assert decision.rebuild == {SERVER, HELLO}
    assert decision.refresh_graph


@pytest.mark.parametrize("path", [ROOT / "docs/modules.txt", ROOT / "vendor/example.com/dep/modules.txt",
                                  Path("/src/vendor/modules.txt")])
def test_other_modules_txt_files_are_not(path: Path) -> None:
    assert run(FileChange(path, "modified"), graph=vendored_graph()) == NOTHING


@pytest.mark.parametrize("name", ["fast_amd64.s", "fast.h", "rsrc.syso"])
def test_assembly_and_syso_files_rebuild_their_dependents(name: str) -> None:
    decision = run(mod(f"internal/fast/{name}"), graph=vendored_graph())
    assert decision == Decision(frozenset({HELLO}), frozenset(), False)
    deleted = run(FileChange(ROOT / "internal/fast" / name, "deleted"), graph=vendored_graph())
    assert deleted.rebuild == {HELLO} and deleted.refresh_graph


def test_new_assembly_file_refreshes_and_an_excluded_one_does_nothing() -> None:
    added = run(FileChange(ROOT / "internal/fast/fast_386.s", "added"), graph=vendored_graph())
    assert added == Decision(frozenset(), frozenset(), True)
    assert run(mod("internal/fast/fast_arm64.s"), graph=vendored_graph()) == NOTHING


# --- Decision ------------------------------------------------------------------------------------------

def test_decision_merge() -> None:
    a = Decision(frozenset({SERVER}), frozenset(), False)
    b = Decision(frozenset({HELLO}), frozenset({SERVER}), True)
    merged = a.merge(b)
    assert merged.rebuild == {SERVER, HELLO}
    assert merged.reimage == {SERVER}
    assert merged.refresh_graph
    assert a.merge(NOTHING) == a
    assert NOTHING.merge(NOTHING) == NOTHING
    assert b.merge(NOTHING) != NOTHING
    # merge returns a new value; the inputs are untouched
    assert a == Decision(frozenset({SERVER}), frozenset(), False)


def test_no_changes_is_nothing() -> None:
    assert decide([], GRAPH, SOURCES) == NOTHING
