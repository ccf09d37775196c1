"""`kodev watch --json` end to end, how saves arrive: many rapid writes, atomic saves, delete-then-create, a save
the moment kodev is watching. examples/hello, real `go`, real dockerd, read through kodev's events
(tests/integration/watch_support.py)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.integration.process import fetch, wait_for_page
from tests.integration.watch_support import (
    GREETING,
    GREETING_SOURCE,
    SETTLE,
    set_greeting,
    settle_and_assert_quiet,
    watching,
    write,
)


def test_rapid_writes_coalesce(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        mark = s.events.mark()
        for i in range(50):
            set_greeting(hello, f"Save {i:02d}")

        wait_for_page(s.url, "Save 49, kodev!", timeout=60)
        time.sleep(SETTLE)  # a late extra round would show up now
        # Builds that later writes supersede deliver nothing (build.superseded); a round may also catch a
        # file half written (a compile error). What is delivered is one round, or two.
        results = s.results("server", mark)
        assert 1 <= len(results) <= 2, f"{len(results)} delivered rounds for 50 rapid writes:\n{s.proc.output()}"
        assert results[-1]["outcome"] in ("rebuilt", "unchanged"), s.proc.output()
        assert "Save 49, kodev!" in (fetch(s.url) or "")


def test_atomic_save_and_delete_then_create(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        target = hello / GREETING
        mark = s.events.mark()
        # An atomic save: a temporary file in the same directory, renamed over the original.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".greeting.go.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(GREETING_SOURCE % "Atomic")
        os.replace(temp, target)
        s.wait_rebuilt("server", mark)
        wait_for_page(s.url, "Atomic, kodev!", timeout=30)

        # An editor that deletes the file, then writes it anew.
        mark = s.events.mark()
        target.unlink()
        target.write_text(GREETING_SOURCE % "Recreated")
        s.wait_rebuilt("server", mark)
        wait_for_page(s.url, "Recreated, kodev!", timeout=30)


def test_save_made_as_watching_is_said_is_rebuilt(hello: Path, repo: str, docker_client: Any) -> None:
    """kodev says `watching` (a save is seen from now on): a save made the moment that event is out counts."""
    with watching(hello, repo, docker_client, started=False) as s:
        deadline = time.monotonic() + 120
        while s.events.count("watching") == 0:  # no 50 ms polling here: save as soon as the event is out
            assert time.monotonic() < deadline and s.proc.process.poll() is None, s.proc.output()
            time.sleep(0.001)
        set_greeting(hello, "Saved at once")
        wait_for_page(s.url, "Saved at once, kodev!", timeout=15)
        assert s.events.fatal() == [], s.proc.output()


def test_a_module_cache_inside_the_module_is_never_news(hello: Path, repo: str, docker_client: Any,
                                                       monkeypatch: Any) -> None:
    """GOMODCACHE=$PWD/.modcache (a common CI cache): what `go mod download` writes there starts no round,
    though it holds go.mod and .go files (its own go.mod would otherwise read as the module's)."""
    cache_dir = hello / ".modcache"
    monkeypatch.setenv("GOMODCACHE", str(cache_dir))
    with watching(hello, repo, docker_client) as s:
        mark = s.events.mark()
        downloaded = cache_dir / "example.com" / "dep@v1.0.0"
        write(downloaded / "go.mod", "module example.com/dep\n\ngo 1.22\n")
        write(downloaded / "dep.go", "package dep\n")
        settle_and_assert_quiet(s, mark)
        set_greeting(hello, "After the download")
        wait_for_page(s.url, "After the download, kodev!", timeout=60)
