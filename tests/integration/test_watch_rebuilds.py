"""`kodev watch --json` end to end, what a change rebuilds: a copy of examples/hello, kodev as a subprocess,
real `go`, real dockerd, kodev read through its events (tests/integration/watch_support.py).

kodev runs with its defaults: a binary-only change is swapped into the running container (same container ID).
Where a scenario's outcome differs when containers are recreated instead (KODEV_SWAP=0), the test takes the
`delivery` fixture and runs under both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.integration.process import fetch, wait_for_page
from tests.integration.watch_support import (
    GREETING,
    assert_delivered,
    container_id,
    delivered_how,
    image_id,
    set_greeting,
    settle_and_assert_quiet,
    watching,
    write,
)


def test_shared_package_edit_rebuilds_both_and_delivers_both(hello: Path, repo: str, docker_client: Any,
                                                             delivery: str) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        s.wait_log(s.hello, "Hello, kodev-test!")
        old_server, old_hello = container_id(docker_client, s.server), container_id(docker_client, s.hello)
        old_images = image_id(docker_client, f"{repo}/server:latest"), image_id(docker_client, f"{repo}/hello:latest")
        mark = s.events.mark()

        set_greeting(hello, "Howdy")

        result = s.wait_rebuilt("server", mark)
        s.wait_rebuilt("hello", mark)
        changes = s.events.all("changes", since=mark)
        assert any(GREETING in [f["path"] for f in e["files"]] and {"server", "hello"} <= set(e["commands"])
                   for e in changes), changes
        wait_for_page(s.url, "Howdy, kodev!", timeout=30)
        assert_delivered(docker_client, s, result, old_server, delivery)
        s.wait_log(s.hello, "Howdy, kodev-test!", mark)
        # hello had exited: whatever the delivery, it runs again in a new container
        assert container_id(docker_client, s.hello) != old_hello
        new_images = image_id(docker_client, f"{repo}/server:latest"), image_id(docker_client, f"{repo}/hello:latest")
        assert all(new != old for new, old in zip(new_images, old_images, strict=True))


def test_command_edit_rebuilds_only_that_command(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        s.wait_log(s.hello, "Hello, kodev-test!")
        assert fetch(s.url + "healthz") == "ok\n"
        old_server, old_hello = container_id(docker_client, s.server), container_id(docker_client, s.hello)
        old_hello_image = image_id(docker_client, f"{repo}/hello:latest")
        mark = s.events.mark()

        main = hello / "cmd/server/main.go"
        main.write_text(main.read_text().replace('fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "ok, edited")'))

        result = s.wait_rebuilt("server", mark)
        wait_for_page(s.url + "healthz", "ok, edited", timeout=30)
        assert_delivered(docker_client, s, result, old_server, "swap")
        # Only server is compiled, and hello has no result of its own in the round.
        builds = s.events.all("build.started", since=mark)
        assert builds and all(e["commands"] == ["server"] for e in builds), builds
        assert all(e["commands"] == ["server"] for e in s.events.all("changes", since=mark)), s.proc.output()
        assert s.results("hello", mark) == [], s.proc.output()
        assert container_id(docker_client, s.hello) == old_hello
        assert image_id(docker_client, f"{repo}/hello:latest") == old_hello_image


def test_comment_only_edit_is_unchanged(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        old = container_id(docker_client, s.server)
        old_image = image_id(docker_client, f"{repo}/server:latest")
        main = hello / "cmd/server/main.go"
        text = main.read_text()
        edited = text.replace("// Command server serves a page", "// Command server (comment edited) serves a page")
        assert edited != text
        mark = s.events.mark()
        main.write_text(edited)

        result = s.wait_result("server", "unchanged", mark, timeout=60)
        assert result["delivered"] == [] and result["image_id"] is None, result  # nothing published or delivered
        assert s.events.all("delivered", since=mark) == [], s.proc.output()
        assert not s.events.rebuilt("server"), s.proc.output()
        assert container_id(docker_client, s.server) == old
        assert image_id(docker_client, f"{repo}/server:latest") == old_image
        assert "Hello, kodev!" in (fetch(s.url) or "")


def test_tests_docs_and_other_platforms_rebuild_nothing(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        mark = s.events.mark()
        old = container_id(docker_client, s.server)
        package = hello / "internal/greeting"
        write(package / "greeting_test.go",
              'package greeting\n\nimport "testing"\n\nfunc TestMessage(t *testing.T) {\n'
              '\tif Message("x") == "" {\n\t\tt.Fatal("empty")\n\t}\n}\n')
        write(hello / "README.md", "# hello\n\nEdited while kodev watches.\n")
        # Not named _windows.go: only its build constraint excludes it on linux.
        write(package / "greeting_win.go",
              '//go:build windows\n\npackage greeting\n\n// Windows only.\nconst Windows = "windows"\n')
        write(package / ".greeting.go.swp", "editor swap file")
        settle_and_assert_quiet(s, mark)
        # Edit them again (now files the package graph knows about): still nothing.
        mark = s.events.mark()
        write(package / "greeting_test.go", (package / "greeting_test.go").read_text() + "\n// more\n")
        write(package / "greeting_win.go", (package / "greeting_win.go").read_text() + "\n// more\n")
        write(hello / "README.md", "# hello\n\nEdited twice.\n")
        settle_and_assert_quiet(s, mark)
        assert container_id(docker_client, s.server) == old

        # The watcher is still alive: a real edit is picked up.
        mark = s.events.mark()
        set_greeting(hello, "Still watching")
        s.wait_rebuilt("server", mark)
        wait_for_page(s.url, "Still watching, kodev!", timeout=30)


def test_kodata_edit_reimages_without_go_build(hello: Path, repo: str, docker_client: Any, delivery: str) -> None:
    """A kodata change is a new image, made without a go build. Swapping, the changed files reach the running
    container in place (tests/integration/test_kodata_swap.py); recreating, the container is recreated."""
    with watching(hello, repo, docker_client, hello="command") as s:
        hello_image = image_id(docker_client, f"{repo}/hello:latest")
        old = container_id(docker_client, s.server)

        # banner.txt reaches kodata through a symlink: edit the file it points at
        assert (hello / "cmd/server/kodata/banner.txt").is_symlink()
        mark = s.events.mark()
        write(hello / "assets/banner.txt", "Banner edited through the link.\n")
        result = s.wait_rebuilt("server", mark)
        assert result["go_seconds"] is None and result["image_id"] is not None, result  # an image, no go build
        assert s.events.all("build.started", since=mark) == [], s.proc.output()
        assert [d["how"] for d in result["delivered"]] == [delivered_how(delivery)], result
        wait_for_page(s.url, "Banner edited through the link.", timeout=30)
        assert (container_id(docker_client, s.server) == old) == (delivery == "swap")

        recreated = container_id(docker_client, s.server)
        index = hello / "cmd/server/kodata/index.html"
        mark = s.events.mark()
        index.write_text(index.read_text().replace("<h1>", "<h1>Index edited: "))
        result = s.wait_rebuilt("server", mark)
        assert result["go_seconds"] is None, result
        assert s.events.all("build.started", since=mark) == [], s.proc.output()
        wait_for_page(s.url, "Index edited: Hello, kodev!", timeout=30)
        assert (container_id(docker_client, s.server) == recreated) == (delivery == "swap")

        assert not s.events.rebuilt("hello"), s.proc.output()
        assert image_id(docker_client, f"{repo}/hello:latest") == hello_image


def test_new_package_is_watched_once_imported(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        mark = s.events.mark()
        write(hello / "internal/extra/extra.go", 'package extra\n\n// Word is served by /healthz.\n'
              'func Word() string { return "alpha" }\n')
        main = hello / "cmd/server/main.go"
        text = main.read_text()
        text = text.replace('"example.com/hello/internal/greeting"',
                            '"example.com/hello/internal/extra"\n\t"example.com/hello/internal/greeting"')
        text = text.replace('fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "ok", extra.Word())')
        main.write_text(text)

        s.wait_rebuilt("server", mark)
        wait_for_page(s.url + "healthz", "ok alpha", timeout=30)

        mark = s.events.mark()
        write(hello / "internal/extra/extra.go", 'package extra\n\n// Word is served by /healthz.\n'
              'func Word() string { return "beta" }\n')
        s.wait_rebuilt("server", mark)
        changes = s.events.all("changes", since=mark)
        assert any("internal/extra/extra.go" in [f["path"] for f in e["files"]] for e in changes), changes
        wait_for_page(s.url + "healthz", "ok beta", timeout=30)


def test_compile_error_keeps_old_container_then_fix_recovers(hello: Path, repo: str, docker_client: Any,
                                                            delivery: str) -> None:
    with watching(hello, repo, docker_client) as s:
        old = container_id(docker_client, s.server)
        broken = (hello / GREETING).read_text().replace('name + "!"', 'name + 1')
        mark = s.events.mark()
        (hello / GREETING).write_text(broken)

        failed = s.events.wait("build.failed", mark, timeout=60)
        assert re.search(r"greeting\.go:\d+:\d+: ", failed["output"]), failed
        error = s.events.wait("error", mark, lambda e: e["kind"] == "CompileError")
        assert error["fatal"] is False and error["output"] == failed["output"], error
        assert not s.events.rebuilt("server")
        assert container_id(docker_client, s.server) == old
        assert "Hello, kodev!" in (fetch(s.url) or ""), "the old container stopped serving after a failed build"

        mark = s.events.mark()
        set_greeting(hello, "Fixed")
        result = s.wait_rebuilt("server", mark)
        wait_for_page(s.url, "Fixed, kodev!", timeout=30)
        assert_delivered(docker_client, s, result, old, delivery)


def test_main_only_edits_are_compiled_and_linked_directly_and_others_by_go_build(hello: Path, repo: str,
                                                                                 docker_client: Any) -> None:
    """The default path: a save's go build teaches kodev the recipe in the background (`build.learned`; the
    first build, of every command, teaches nothing: it would cost each command a learning kodev may never
    use), then every main-only edit is built directly (`build.finished` says `direct`) and served; a library
    edit goes back to go build, and teaches again."""
    main = hello / "cmd/server/main.go"
    original = main.read_text()
    with watching(hello, repo, docker_client) as s:
        assert s.events.all("build.learned") == [], "the first build teaches nothing"
        directs: list[bool] = []
        for edit in range(3):
            mark = s.events.mark()
            main.write_text(original.replace('fmt.Fprintln(w, "ok")', f'fmt.Fprintln(w, "ok {edit}")'))
            s.wait_rebuilt("server", mark)
            wait_for_page(s.url + "healthz", f"ok {edit}", timeout=30)
            finished = s.events.all("build.finished", since=mark)
            assert len(finished) == 1, finished
            directs.append(finished[0]["direct"])
            if edit == 0:
                learned = s.events.wait("build.learned", since=mark, timeout=120)
                assert learned == {**learned, "command": "server", "direct": True, "reason": ""}, learned
        assert directs == [False, True, True], s.proc.output()
        assert len(s.events.all("build.learned")) == 1, "a direct build teaches nothing: it is the recipe"
        mark = s.events.mark()
        set_greeting(hello, "Howdy")
        s.wait_rebuilt("server", mark)
        wait_for_page(s.url, "Howdy, kodev!", timeout=30)
        assert [e["direct"] for e in s.events.all("build.finished", since=mark)] == [False], s.proc.output()
        s.events.wait("build.learned", since=mark, match=lambda e: e["direct"] is True, timeout=120)


def test_direct_false_keeps_every_build_a_go_build(hello: Path, repo: str, docker_client: Any) -> None:
    main = hello / "cmd/server/main.go"
    original = main.read_text()
    with watching(hello, repo, docker_client, extra="\n[watch]\ndirect = false\n") as s:
        mark = s.events.mark()
        for edit in range(3):
            main.write_text(original.replace('fmt.Fprintln(w, "ok")', f'fmt.Fprintln(w, "ok {edit}")'))
            s.wait_rebuilt("server", mark, count=edit + 1)
            wait_for_page(s.url + "healthz", f"ok {edit}", timeout=30)
        finished = s.events.all("build.finished", since=mark)
        assert [e["direct"] for e in finished] == [False] * 3, s.proc.output()


def test_a_container_removed_behind_kodevs_back_is_noticed_idle_and_started_again(hello: Path, repo: str,
                                                                                  docker_client: Any) -> None:
    """The idle health check asks the daemon which followed containers still exist (one request for all):
    a `docker rm -f` is seen without a save, said, and the service runs again in a new container."""
    with watching(hello, repo, docker_client) as s:
        old = docker_client.containers.get(s.server).id
        mark = s.events.mark()
        docker_client.containers.get(old).remove(force=True)
        warning = s.events.wait("message", since=mark, match=lambda e: e["level"] == "warning", timeout=60)
        assert s.server in warning["text"] and "is gone" in warning["text"], warning
        s.events.wait("delivered", since=mark, match=lambda e: e["service"] == s.server, timeout=120)
        wait_for_page(s.url, "Hello, kodev!", timeout=60)
        assert docker_client.containers.get(s.server).id != old
