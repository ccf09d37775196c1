"""Bursts of saves against the real loop (real Go, real dockerd): an editor's auto-save, a script writing
hundreds of files, a `git checkout`. A compile that newer saves make stale gives way to them
(`build.superseded`), so a burst costs one delivered round after it ends, not one per pause; the rules
themselves are simulated in tests/test_loop_rules.py, and the time to serve is the benchmark's (bench/).

Under both deliveries: the tail of a round (image, load, swap or recreate) differs, and saves landing in it
must not be lost.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REQUIRE_REAL
from tests.integration.modules import SETTLE, Module, write
from tests.integration.process import fetch
from tests.integration.test_default_path import JsonWatch, watching


def add_extra_files(module: Module, count: int, value: str) -> list[Path]:
    """`count` more files in package greeting, each a constant; the page shows them all, in order."""
    package = module.path / "internal/greeting"
    files = [package / f"extra_{i:03d}.go" for i in range(count)]
    for i, path in enumerate(files):
        write(path, extra_source(i, value))
    names = " + ".join(f"Extra{i:03d}" for i in range(count))
    write(package / "all.go", f"package greeting\n\n// All is every extra constant.\nconst All = {names}\n")
    write(package / "greeting.go", 'package greeting\n\n// Message greets.\nfunc Message(name string) string {\n'
          '\treturn "Hello, " + name + "! [" + All + "]"\n}\n')
    return files


def extra_source(index: int, value: str) -> str:
    return f'package greeting\n\n// Extra{index:03d} is one part of All.\nconst Extra{index:03d} = "{value}"\n'


def paced_writes(writes: list[tuple[Path, str]], seconds: float) -> None:
    """Each (file, text) written in turn, spread evenly over `seconds` (a busy machine may take longer)."""
    started = time.monotonic()
    for n, (path, text) in enumerate(writes):
        path.write_text(text)
        pause = started + (n + 1) * seconds / len(writes) - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def after_the_burst(s: JsonWatch, mark: int, final: str) -> tuple[int, int]:
    """Wait until `final` serves and a while more (a late extra round would show); the delivered rounds and
    the superseded compiles since `mark`. Every build that started either finished or gave way."""
    s.page(final, timeout=60)
    time.sleep(SETTLE)
    assert final in (fetch(s.url) or "")
    since = s.events()[mark:]
    delivered = sum(1 for e in since if e["event"] == "command.result" and e["outcome"] == "rebuilt")
    superseded = sum(1 for e in since if e["event"] == "build.superseded")
    started = sum(1 for e in since if e["event"] == "build.started")
    finished = sum(1 for e in since if e["event"] == "build.finished")
    # A build may catch a file half written, and fail, when no newer save came yet: never the last one.
    failed = sum(1 for e in since if e["event"] == "build.failed")
    assert [e for e in since if e["event"] == "error" and e["kind"] != "CompileError"] == [], s.proc.output()
    assert started == finished + superseded + failed, s.proc.output()
    builds = [e["event"] for e in since if e["event"] in ("build.finished", "build.superseded", "build.failed")]
    assert builds[-1] == "build.finished", s.proc.output()
    return delivered, superseded


def test_30_saves_in_one_second_are_one_delivered_round(mod: Module, delivery: str) -> None:
    files = add_extra_files(mod, 30, "a")
    with watching(mod) as s:
        s.page(f"[{'a' * 30}]", timeout=30)
        mark = s.mark()
        paced_writes([(path, extra_source(i, "z")) for i, path in enumerate(files)], 1.0)
        delivered, _ = after_the_burst(s, mark, f"[{'z' * 30}]")
        assert 1 <= delivered <= 2, f"{delivered} delivered rounds for one burst\n{s.proc.output()}"
        s.stop()


def test_500_writes_are_at_most_two_delivered_rounds(mod: Module, delivery: str) -> None:
    files = add_extra_files(mod, 50, "a")
    with watching(mod) as s:
        s.page(f"[{'a' * 50}]", timeout=30)
        mark = s.mark()
        # Ten passes over the 50 files in ~2.5 s: the page shows which pass each file last got.
        paced_writes([(files[n % 50], extra_source(n % 50, str(n // 50))) for n in range(500)], 2.5)
        delivered, _ = after_the_burst(s, mark, f"[{'9' * 50}]")
        assert 1 <= delivered <= 2, f"{delivered} delivered rounds for 500 writes\n{s.proc.output()}"
        s.stop()


def git(module: Module, *args: str) -> None:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          cwd=module.path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"


def test_a_git_checkout_of_100_changed_files_is_at_most_two_delivered_rounds(mod: Module, delivery: str) -> None:
    if shutil.which("git") is None:
        if REQUIRE_REAL:
            pytest.fail("git is required (KODEV_REQUIRE_REAL=1) but missing", pytrace=False)
        pytest.skip("git not available")
    files = add_extra_files(mod, 100, "m")
    git(mod, "init", "-q", "-b", "main")
    git(mod, "add", "-A")
    git(mod, "commit", "-q", "-m", "main")
    git(mod, "checkout", "-q", "-b", "other")
    for index, path in enumerate(files):
        path.write_text(extra_source(index, "o"))
    git(mod, "commit", "-q", "-am", "other")
    git(mod, "checkout", "-q", "main")
    with watching(mod) as s:
        s.page(f"[{'m' * 100}]", timeout=30)
        mark = s.mark()
        git(mod, "checkout", "-q", "other")
        delivered, _ = after_the_burst(s, mark, f"[{'o' * 100}]")
        assert 1 <= delivered <= 2, f"{delivered} delivered rounds for one git checkout\n{s.proc.output()}"
        s.stop()
