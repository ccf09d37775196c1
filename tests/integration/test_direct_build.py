"""Direct builds against the real toolchain (kodev/directbuild.py): a main-only edit compiled and linked by
a recipe read from go build's dry runs writes exactly the bytes go build writes, and anything else a build
reads that changed sends the round back to go build. A copy of examples/hello; no Docker (the end-to-end
test with kodev watch is in test_watch_rebuilds.py)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kodev.directbuild import OVERTAKEN, DirectBuilds, command_sources
from kodev.gobuild import Binary, BuildRequest, Superseded, compile_commands
from kodev.gomod import load_graph, resolve_commands
from kodev.gotool import GoTool, find_go
from tests.examples import copy_example

SERVER = "cmd/server/main.go"


@dataclass
class Loop:
    """What the watch loop does around a compile, without the loop: stamp, go build, learn; or direct."""

    module: Path
    go: GoTool
    request: BuildRequest
    direct: DirectBuilds
    out: Path
    learned: list[tuple[str, bool, str]]
    rounds: int = 0

    def go_build(self) -> Binary:
        """A go build as a round runs it (stamped before, learned from after, the learning awaited)."""
        before = self.direct.stamp([self.request])
        self.rounds += 1
        binary = compile_commands(self.go, [self.request], self.out / f"go{self.rounds}")[0]
        learning = self.direct.learn([binary], [self.request], before)
        assert learning is not None
        learning.result(timeout=60)
        return binary

    def direct_build(self) -> Binary | None:
        self.rounds += 1
        found = self.direct.build([self.request], self.out / f"direct{self.rounds}")
        return found[0] if found else None

    def reference(self) -> str:
        """The digest of what go build makes of the tree now (into a directory the loop never reads)."""
        self.rounds += 1
        return compile_commands(self.go, [self.request], self.out / f"ref{self.rounds}")[0].digest


def edit(module: Path, old: str, new: str, path: str = SERVER) -> None:
    file = module / path
    text = file.read_text()
    assert old in text, (path, old)
    file.write_text(text.replace(old, new, 1))


@pytest.fixture
def loop(tmp_path: Path, go_binary: str) -> Iterator[Loop]:
    module = copy_example("hello", tmp_path / "hello")
    go = find_go(go_binary, {"GOFLAGS": "", "GOPROXY": "off"})
    command = resolve_commands(go, ["./cmd/server"], module)[0]
    graph = load_graph(go, [command], module)
    learned: list[tuple[str, bool, str]] = []
    direct = DirectBuilds(go, tmp_path / "direct",
                          lambda c: command_sources(graph, c, go.env_file(module), Path(go.binary)),
                          lambda c, ready, reason: learned.append((c.app_name, ready, reason)))
    request = BuildRequest(command, ldflags=("-s", "-w"))
    session = Loop(module, go, request, direct, tmp_path / "out", learned)
    try:
        yield session
    finally:
        direct.close()


def test_main_only_edits_are_built_directly_with_go_builds_bytes(loop: Loop) -> None:
    loop.go_build()
    for word in ("Howdy", "Hi", "Ahoy"):
        edit(loop.module, 'fmt.Fprint(w, body)', f'fmt.Fprint(w, body+"<!-- {word} -->")')
        built = loop.direct_build()
        assert built is not None, f"a main-only edit ({word}) went back to go build"
        assert built.digest == loop.reference()
        assert f"<!-- {word} -->".encode() in built.path.read_bytes()
        edit(loop.module, f'fmt.Fprint(w, body+"<!-- {word} -->")', 'fmt.Fprint(w, body)')


def test_an_edit_outside_the_main_package_goes_to_go_build_and_teaches_it_again(loop: Loop) -> None:
    loop.go_build()
    edit(loop.module, '"Hello, "', '"Howdy, "', "internal/greeting/greeting.go")
    assert loop.direct_build() is None  # the library's archive in the cache is the old one
    loop.go_build()
    edit(loop.module, "fmt.Fprint(w, body)", 'fmt.Fprint(w, body+"!")')
    built = loop.direct_build()
    assert built is not None and built.digest == loop.reference()
    assert b"Howdy" in built.path.read_bytes()


@pytest.mark.parametrize(("why", "old", "new"), [
    ("a new import", '"strings"\n', '"strings"\n\t"net/url"\n'),
    ("a //go:debug directive", "package main\n", "//go:debug panicnil=1\npackage main\n"),
    ("a build constraint", "package main\n", "//go:build linux\n\npackage main\n"),
])
def test_an_edit_that_changes_how_the_package_builds_goes_to_go_build(loop: Loop, why: str, old: str,
                                                                       new: str) -> None:
    loop.go_build()
    edit(loop.module, old, new)
    if "url" in new:
        edit(loop.module, "fmt.Fprint(w, body)", "fmt.Fprint(w, body+url.PathEscape(\"a b\"))")
    assert loop.direct_build() is None, why


@pytest.mark.parametrize("change", ["go.mod", "new file", "file added elsewhere"])
def test_a_change_beside_the_main_files_goes_to_go_build(loop: Loop, change: str) -> None:
    loop.go_build()
    edit(loop.module, "fmt.Fprint(w, body)", 'fmt.Fprint(w, body+"!")')
    if change == "go.mod":
        (loop.module / "go.mod").write_text((loop.module / "go.mod").read_text() + "\n// touched\n")
    elif change == "new file":
        (loop.module / "cmd/server/extra.go").write_text("package main\n\nvar extra = 1\n")
    else:
        (loop.module / "internal/greeting/new.go").write_text("package greeting\n")
    assert loop.direct_build() is None


def test_a_compile_error_is_left_to_go_build_to_report(loop: Loop) -> None:
    loop.go_build()
    edit(loop.module, "fmt.Fprint(w, body)", "fmt.Fprint(w, undefinedThing)")
    assert loop.direct_build() is None


def test_a_build_cache_entry_gone_sends_it_to_go_build(loop: Loop) -> None:
    loop.go_build()
    learned = next(iter(loop.direct._learned.values()))
    learned.recipe.inputs[0].rename(learned.recipe.inputs[0].with_suffix(".moved"))
    edit(loop.module, "fmt.Fprint(w, body)", 'fmt.Fprint(w, body+"!")')
    try:
        assert loop.direct_build() is None
    finally:
        learned.recipe.inputs[0].with_suffix(".moved").rename(learned.recipe.inputs[0])


def _git(module: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=module,
                          check=True, capture_output=True, text=True).stdout


def test_in_a_git_checkout_the_build_info_go_embeds_is_kept(loop: Loop) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed (go stamps a checkout's revision into its binaries)")
    loop.request = dataclasses.replace(loop.request, flags=("-buildvcs=true",))  # whatever GOFLAGS says here
    _git(loop.module, "init", "-q")
    _git(loop.module, "add", "-A")
    _git(loop.module, "commit", "-qm", "start")
    loop.go_build()  # a clean checkout: the first edit changes vcs.modified, no recipe is kept
    edit(loop.module, "fmt.Fprint(w, body)", 'fmt.Fprint(w, body+"1")')
    assert loop.direct_build() is None
    loop.go_build()  # modified now
    edit(loop.module, 'body+"1"', 'body+"2"')
    built = loop.direct_build()
    assert built is not None and built.digest == loop.reference()
    info = subprocess.run([loop.go.binary, "version", "-m", str(built.path)], capture_output=True, text=True,
                          check=True).stdout
    assert "vcs.modified=true" in info, info
    _git(loop.module, "commit", "-qam", "next")  # HEAD moved (and the tree is clean again)
    edit(loop.module, 'body+"2"', 'body+"3"')
    assert loop.direct_build() is None


def test_newer_saves_give_a_running_direct_build_up(loop: Loop) -> None:
    loop.go_build()
    edit(loop.module, "fmt.Fprint(w, body)", 'fmt.Fprint(w, body+"!")')
    answers = iter([False])  # not yet when it starts; then, asked while the compile runs: yes
    with pytest.raises(Superseded):
        loop.direct.build([loop.request], loop.out / "given-up", lambda: next(answers, True))
    built = loop.direct_build()  # the recipe is still good for the next round
    assert built is not None and built.digest == loop.reference()


def test_each_learning_says_whether_the_next_edit_is_direct(loop: Loop) -> None:
    loop.go_build()
    assert loop.learned == [("server", True, "")]


def test_a_learning_overtaken_by_a_save_says_so_and_leaves_the_next_edit_to_go_build(loop: Loop) -> None:
    """The save lands between go build and its learning: the recipe's bytes cannot match, for a reason kodev
    knows (not a recipe gone wrong), and nothing unchecked is kept."""
    before = loop.direct.stamp([loop.request])
    binary = compile_commands(loop.go, [loop.request], loop.out / "go")[0]
    edit(loop.module, 'fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "saved meanwhile")')
    learning = loop.direct.learn([binary], [loop.request], before)
    assert learning is not None
    learning.result(timeout=60)
    assert loop.learned == [("server", False, OVERTAKEN)]
    assert loop.direct_build() is None


def test_of_two_go_builds_queued_only_the_newer_is_learned(loop: Loop) -> None:
    before = loop.direct.stamp([loop.request])
    first = compile_commands(loop.go, [loop.request], loop.out / "go1")[0]
    older = loop.direct.learn([first], [loop.request], before)
    edit(loop.module, 'fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "second")')
    before = loop.direct.stamp([loop.request])
    second = compile_commands(loop.go, [loop.request], loop.out / "go2")[0]
    newer = loop.direct.learn([second], [loop.request], before)
    assert older is not None and newer is not None
    older.result(timeout=60)
    newer.result(timeout=60)
    *overtaken, last = loop.learned
    assert last == ("server", True, ""), loop.learned
    assert overtaken in ([], [("server", False, OVERTAKEN)]), "the older one, overtaken, says so or nothing"
    edit(loop.module, 'fmt.Fprintln(w, "second")', 'fmt.Fprintln(w, "third")')
    built = loop.direct_build()
    assert built is not None and built.digest == loop.reference()


def test_closing_gives_a_learning_under_way_up_and_says_nothing(loop: Loop) -> None:
    """A kodev.toml reload closes the loop's direct builds: a niced learning under way stops at its next
    step rather than running to its end."""
    before = loop.direct.stamp([loop.request])
    binary = compile_commands(loop.go, [loop.request], loop.out / "go")[0]
    learning = loop.direct.learn([binary], [loop.request], before)
    loop.direct.close()
    assert learning is not None
    learning.result(timeout=60)
    assert loop.learned == []
    edit(loop.module, 'fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "after")')
    assert loop.direct_build() is None
