"""Issue 20: a module whose dependencies come from the Go module proxy (downloaded, not vendored), the case
users have most often and every other fixture avoids: built, watched, rebuilt, its go.mod and go.sum edited.

The module is tests/fixtures/withdeps (go.mod and go.sum committed): a small HTTP service on a router
(github.com/go-chi/chi/v5) and a logger (github.com/rs/zerolog, which brings github.com/mattn/go-colorable,
github.com/mattn/go-isatty and golang.org/x/sys). Each test works on a copy of it renamed to a module path of
its own. Its modules are downloaded once per test session (per xdist worker) into a module cache of the
session's (`module_cache`), which kodev and the tests' own `go` commands share through GOMODCACHE; the
user's module cache is never used. Go makes what it extracts there read-only; kodev must never watch it, nor
change it: every test ends by checking each file and directory it extracted still has no write bit and was
not changed since the download (same mode, same ctime: not even a chmod to the same mode), and the session
checks it once more before removing the cache (`go clean -modcache`).

Every test here is marked `module_proxy` (the rest of the suite runs with GOPROXY=off, tests/conftest.py).
Without the proxy they skip (fail under KODEV_REQUIRE_REAL=1).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kodev.jsonui import check_event
from tests.conftest import GOPROXY_OUTSIDE
from tests.integration.conftest import _missing, run_kodev
from tests.integration.json_events import Event, Events
from tests.integration.modules import Module, clean_daemon, server_service, start_kodev, write
from tests.integration.process import KodevProcess, fetch, free_port, wait_until

pytestmark = pytest.mark.module_proxy

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "withdeps"
FIXTURE_PATH = "example.com/withdeps"  # its module path, renamed in each test's copy
CHI, CHI_VERSION, CHI_OTHER = "github.com/go-chi/chi/v5", "v5.5.0", "v5.4.0"  # go.mod's, and the one `go get` picks
ZEROLOG, ZEROLOG_VERSION = "github.com/rs/zerolog", "v1.35.1"
PAGE = "internal/page/page.go"
PAGE_SOURCE = '''// Package page is the text the server answers: the main module's own code, which the tests edit.
package page

// Text is the body of GET /.
func Text() string {
	return "%s"
}
'''
FIRST_TEXT = "Hello from withdeps!"
WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


# --- the session's module cache ------------------------------------------------------------------------------

@dataclass
class ModuleCache:
    """GOMODCACHE of this test session, and (mode, ctime) of everything Go extracted into it after the download."""

    path: Path
    go: str  # the `go` binary
    extracted: dict[Path, tuple[int, int]]

    def scan(self) -> dict[Path, tuple[int, int]]:
        """Every extracted module tree (`…/name@version/`, everything under it), without following links;
        cache/ (zips, lists, locks: Go keeps those writable) is not part of it."""
        found: dict[Path, tuple[int, int]] = {}
        for directory, dirs, files in os.walk(self.path):
            here = Path(directory)
            if here == self.path and "cache" in dirs:
                dirs.remove("cache")
            for name in [*dirs, *files]:
                entry = here / name
                if "@" in entry.relative_to(self.path).as_posix():
                    status = entry.lstat()
                    found[entry] = (status.st_mode, status.st_ctime_ns)
        return found

    def holds(self, path: str | Path) -> bool:
        resolved = Path(path).resolve()
        return resolved == self.path or self.path in resolved.parents

    def assert_untouched(self) -> None:
        """Everything extracted is read-only, and nothing extracted at the download was changed since."""
        now = self.scan()
        writable = [f"{stat.filemode(mode)} {path}" for path, (mode, _) in now.items()
                    if mode & WRITE_BITS and not stat.S_ISLNK(mode)]
        assert writable == [], f"writable in the module cache {self.path}:\n" + "\n".join(writable[:20])
        changed = [f"{path}: {self.extracted[path]} -> {now.get(path)}" for path in self.extracted
                   if now.get(path) != self.extracted[path]]
        assert changed == [], "changed in the module cache since the download (mode, ctime):\n" + "\n".join(
            changed[:20])


def _go_env(cache: Path) -> dict[str, str]:
    """The environment of a `go` that may download: the shell's GOPROXY (tests/conftest.py turned it off)."""
    env = {**os.environ, "GOMODCACHE": str(cache)}
    env.pop("GOPROXY", None)
    if GOPROXY_OUTSIDE is not None:
        env["GOPROXY"] = GOPROXY_OUTSIDE
    return env


@pytest.fixture(scope="session")
def module_cache(tmp_path_factory: pytest.TempPathFactory, go_binary: str) -> Iterator[ModuleCache]:
    """The fixture module's dependencies (and chi's other version) downloaded once into a module cache of this
    session's; after the session it is checked once more, then removed the way Go removes one."""
    path = tmp_path_factory.mktemp("gomodcache").resolve()
    scratch = tmp_path_factory.mktemp("withdeps-download")
    shutil.copytree(FIXTURE, scratch, dirs_exist_ok=True)  # `go mod download` may add to go.sum: not ours
    env = _go_env(path)
    for args in (["mod", "download"], ["mod", "download", f"{CHI}@{CHI_OTHER}"]):
        done = subprocess.run([go_binary, *args], cwd=scratch, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        if done.returncode != 0:
            _missing(f"the Go module proxy (`go {' '.join(args)}` failed: {done.stderr.strip()})")
    cache = ModuleCache(path, go_binary, {})
    cache.extracted = cache.scan()
    assert any(p.name == f"v5@{CHI_VERSION}" for p in cache.extracted), sorted(cache.extracted)[:10]
    yield cache
    cache.assert_untouched()  # a failure here is an error at the teardown of the session's last test
    subprocess.run([go_binary, "clean", "-modcache"], env=env, capture_output=True, timeout=120, check=False)


# --- a copy of the module, and kodev on it -------------------------------------------------------------------

@pytest.fixture
def withdeps(tmp_path: Path, module_cache: ModuleCache, docker_client: Any, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[Module]:
    """A copy of tests/fixtures/withdeps renamed to example.com/r<uid>, with the session's module cache as
    GOMODCACHE for kodev and for `go`; its containers and images removed afterwards."""
    monkeypatch.setenv("GOMODCACHE", str(module_cache.path))
    target = tmp_path / "withdeps"
    shutil.copytree(FIXTURE, target)
    module = Module(target, uuid.uuid4().hex[:8], docker_client)
    for path in [target / "go.mod", *target.rglob("*.go")]:
        path.write_text(path.read_text().replace(FIXTURE_PATH, module.module_path))
    (target / "kodev.toml").write_text(f'repo = "{module.repo}"\n')
    try:
        yield module
    finally:
        clean_daemon(module)


def go(cache: ModuleCache, module: Module, *args: str) -> None:
    """`go ARGS` in the module, as the user would run it beside kodev (same GOMODCACHE, the proxy allowed)."""
    done = subprocess.run([cache.go, *args], cwd=module.path, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, f"go {' '.join(args)}:\n{done.stderr}"


def set_page(module: Module, text: str) -> None:
    write(module.path / PAGE, PAGE_SOURCE % text)


def rebuilt(event: Event) -> bool:
    """A `command.result` of the server (events name a command by its last path element) with a new image."""
    return bool(event["command"] == "server" and event["outcome"] == "rebuilt")


def deps_served(url: str) -> dict[str, str]:
    """The module versions the serving binary was built with (its GET /deps)."""
    lines = (fetch(url + "deps") or "").splitlines()
    return dict(line.split(" ", 1) for line in lines if " " in line)


def inotify_watches(pid: int) -> set[tuple[int, int, int]]:
    """(major, minor, inode) of every inode `pid` has an inotify watch on (/proc/PID/fdinfo)."""
    found = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        with contextlib.suppress(OSError):
            for line in info.read_text().splitlines():
                if line.startswith("inotify wd:"):
                    fields = dict(f.split(":", 1) for f in line.split()[1:] if ":" in f)
                    device = int(fields["sdev"], 16)  # the kernel's encoding: major << 20 | minor
                    found.add((device >> 20, device & 0xFFFFF, int(fields["ino"], 16)))
    return found


def assert_module_cache_not_watched(pid: int, cache: ModuleCache) -> None:
    """No directory of the module cache (nor the cache itself) has an inotify watch of kodev's; and kodev does
    watch (the check would prove nothing otherwise)."""
    watched = inotify_watches(pid)
    assert watched, f"kodev (pid {pid}) has no inotify watch at all"
    hit = []
    for walked, _, _ in os.walk(cache.path):  # every directory: the extracted trees, their parents, cache/
        directory = Path(walked)
        status = directory.lstat()
        if (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino) in watched:
            hit.append(str(directory))
    assert hit == [], f"kodev watches the module cache: {sorted(set(hit))[:20]}"


@dataclass
class Watched:
    """A `kodev watch --json` on the module with one server service on `port` (host network)."""

    proc: KodevProcess
    events: Events
    module: Module
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def page(self, text: str, timeout: float = 60) -> None:
        wait_until(lambda: text in (fetch(self.url) or ""), timeout,
                   lambda: f"{self.url} never served {text!r} (now {fetch(self.url)!r})\n{self.proc.output()}")

    def stop(self) -> None:
        code = self.proc.stop(signal.SIGINT, timeout=60)
        assert code == 0, self.proc.output()
        assert self.events.fatal() == [], self.proc.output()


def rounds_for(s: Watched, mark: int, paths: set[str]) -> tuple[set[str], Event]:
    """The rounds that saving `paths` started after `mark` (one, or more if the saves were seen apart): every
    path their `changes` events named, once those named all of `paths`, and the server's `command.result` that
    ended the last of them."""
    def named() -> set[str]:
        return {f["path"] for e in s.events.all("changes", since=mark) for f in e["files"]}

    wait_until(lambda: paths <= named(), 60, lambda: f"no changes event named {paths}\n{s.proc.output()}")
    last = s.events.all().index(s.events.all("changes", since=mark)[-1])
    result = s.events.wait("command.result", last, lambda e: e["command"] == "server")
    return named(), result


@contextlib.contextmanager
def watching(module: Module) -> Iterator[Watched]:
    port = free_port()
    write(module.path / "kodev.toml", f'repo = "{module.repo}"\n' + server_service(module.name("srv"), port))
    proc = start_kodev(module, ["watch", "--json"])
    session = Watched(proc, Events(proc), module, port)
    try:
        session.events.wait("watching", timeout=180)
        session.page(FIRST_TEXT, timeout=60)
        yield session
    finally:
        proc.kill()


def assert_roots_outside(roots: list[str], module: Module, cache: ModuleCache) -> None:
    """The `watching` event's roots: the module, and no path in the module cache."""
    assert [r for r in roots if cache.holds(r)] == [], f"watch roots in GOMODCACHE {cache.path}: {roots}"
    assert str(module.path) in roots or str(module.path.resolve()) in roots, roots


# --- the tests -----------------------------------------------------------------------------------------------

def test_kodev_build_compiles_the_downloaded_dependencies_from_the_shared_module_cache(
        withdeps: Module, module_cache: ModuleCache, docker_client: Any) -> None:
    """With GOPROXY=off: kodev finds every module in the session's cache (GOMODCACHE), downloads nothing;
    the image serves, built with the versions go.mod names."""
    done = run_kodev(["build", "--json", "./cmd/server"], withdeps.path, env={"GOPROXY": "off"})
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    events: list[Event] = [json.loads(line) for line in done.stdout.splitlines()]
    for event in events:
        check_event(event)
    [result] = [e for e in events if e["event"] == "command.result"]
    assert result["command"] == "server" and result["outcome"] == "image", result  # kodev build's outcome
    assert [e for e in events if e["event"] == "build.finished" and e["commands"] == ["server"]], events
    ref = result["ref"]
    assert ref and ref.startswith(f"{withdeps.repo}/server"), result
    port = free_port()
    container = docker_client.containers.run(ref, ["-addr", f"127.0.0.1:{port}"], detach=True, network_mode="host",
                                             name=withdeps.name("built"))
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: FIRST_TEXT in (fetch(url) or ""), 30,
                   lambda: f"{ref} never served; logs:\n{container.logs().decode()}")
        deps = deps_served(url)
        assert deps.get(CHI) == CHI_VERSION and deps.get(ZEROLOG) == ZEROLOG_VERSION, deps
        assert "golang.org/x/sys" in deps, deps  # zerolog's dependencies' too: the whole downloaded graph
        logs = container.logs().decode()
        assert '"message":"listening"' in logs, logs  # zerolog's JSON line
    finally:
        container.remove(force=True)
    module_cache.assert_untouched()


def test_an_edit_in_the_main_module_is_rebuilt_and_served_and_the_module_cache_never_watched(
        withdeps: Module, module_cache: ModuleCache) -> None:
    with watching(withdeps) as s:
        assert_roots_outside(s.events.wait("watching")["roots"], withdeps, module_cache)
        assert_module_cache_not_watched(s.proc.process.pid, module_cache)
        for text in ("Edited once", "Edited twice"):
            mark = s.events.mark()
            set_page(withdeps, text)
            s.page(text)
            s.events.wait("command.result", mark, rebuilt)
        assert deps_served(s.url).get(CHI) == CHI_VERSION
        assert_module_cache_not_watched(s.proc.process.pid, module_cache)
        s.stop()
    module_cache.assert_untouched()


def test_go_get_and_go_mod_tidy_reload_the_graph_and_the_next_edit_is_served(
        withdeps: Module, module_cache: ModuleCache) -> None:
    """`go get` another version of chi (go.mod and go.sum change): the graph is loaded again and the binary
    built with it serves; `go mod tidy` then (only go.sum changes): the graph is loaded again; an edit after
    both is served."""
    go_mod, go_sum = withdeps.path / "go.mod", withdeps.path / "go.sum"
    with watching(withdeps) as s:
        assert_roots_outside(s.events.wait("watching")["roots"], withdeps, module_cache)

        mark = s.events.mark()
        go(module_cache, withdeps, "get", f"{CHI}@{CHI_OTHER}")
        assert f"{CHI} {CHI_OTHER}" in go_mod.read_text() and f"{CHI} {CHI_OTHER} " in go_sum.read_text()
        changed, result = rounds_for(s, mark, {"go.mod", "go.sum"})
        assert changed == {"go.mod", "go.sum"}, s.proc.output()
        assert s.events.all("graph.loaded", since=mark), f"no graph reload\n{s.proc.output()}"
        assert result["outcome"] == "rebuilt", result
        wait_until(lambda: deps_served(s.url).get(CHI) == CHI_OTHER, 60,
                   lambda: f"chi {CHI_OTHER} never served: {deps_served(s.url)}\n{s.proc.output()}")
        s.page(FIRST_TEXT)

        module_before, sum_before = go_mod.read_text(), go_sum.read_text()
        mark = s.events.mark()
        go(module_cache, withdeps, "mod", "tidy")  # drops chi v5.5.0's lines from go.sum, nothing else
        assert go_mod.read_text() == module_before and go_sum.read_text() != sum_before
        assert f"{CHI} {CHI_VERSION} " not in go_sum.read_text()
        changed, result = rounds_for(s, mark, {"go.sum"})
        assert changed == {"go.sum"}, s.proc.output()
        assert s.events.all("graph.loaded", since=mark), f"no graph reload for go.sum\n{s.proc.output()}"
        assert result["outcome"] == "unchanged", result  # the same binary: nothing published, nothing restarted

        mark = s.events.mark()
        set_page(withdeps, "Edited after go get")
        s.page("Edited after go get")
        s.events.wait("command.result", mark, rebuilt)
        assert deps_served(s.url).get(CHI) == CHI_OTHER
        assert_module_cache_not_watched(s.proc.process.pid, module_cache)  # the reloaded graph's roots too
        s.stop()
    module_cache.assert_untouched()
