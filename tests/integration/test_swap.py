"""Swap in place (`kodev run --watch`, watch mode's default): a binary-only change is served by the same
container, kodev's supervisor its PID 1 — through the bind mount and through the copy path; anything else
recreates; the image in the daemon follows the last good build; --no-swap recreates every time. kodev runs
with --json: the tests read its events."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from kodev.gobuild import BuildRequest, compile_commands, file_digest
from kodev.gomod import resolve_commands
from kodev.gotool import find_go
from tests.integration.json_events import Event, Events
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored
from tests.integration.run_support import Ctx, ctx, kodev_build, module, page, server  # noqa: F401 - fixtures


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def _supervised(container: Any) -> bool:
    return str(container.attrs["Config"]["Entrypoint"][0]).endswith("supervisor")


def _hows(events: Events, since: int) -> list[str]:
    """How the next new image after `since` reached the container (the round's `command.result`)."""
    result: Event = events.wait("command.result", since, lambda e: e["outcome"] == "rebuilt", timeout=30)
    return [d["how"] for d in result["delivered"]]


@pytest.mark.parametrize("copy", [False, True], ids=["mount", "copy"])
def test_binary_only_change_is_served_by_the_same_container(module: Path, ctx: Ctx,  # noqa: F811
                                                            copy: bool) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    name = ctx.name("swap")
    with (module / "kodev.toml").open("a") as config:  # link as `kodev build` does: the images can be compared
        config.write("\n[watch]\nstrip = false\n")
    with sigint_not_ignored():
        proc = KodevProcess(server(ctx, "swap", port, "--watch"), module,
                            env={"KODEV_SWAP": "1", "KODEV_SWAP_COPY": "1" if copy else "0"})
    events = Events(proc)
    try:
        page(proc, url, "Hello, kodev!", timeout=120)
        events.wait("watching", timeout=30)
        first = ctx.container(name)
        assert first is not None and _supervised(first), proc.output()
        # The way binaries get there: the supervisor in the read-only bind mount, or beside the app (copy).
        entrypoint = first.attrs["Config"]["Entrypoint"][0]
        mounted = [m for m in first.attrs["Mounts"] if m["Destination"] == "/kodev"]
        if copy:
            assert entrypoint == "/ko-app/.kodev/.supervisor" and mounted == [], first.attrs["Mounts"]
        else:
            assert entrypoint == "/kodev/.supervisor" and [m["RW"] for m in mounted] == [False], first.attrs["Mounts"]

        # main.go: only the binary changes -> swapped into the running container.
        mark = events.mark()
        _edit(module / "internal" / "greeting" / "greeting.go", '"Hello, "', '"Howdy, "')
        page(proc, url, "Howdy, kodev!")
        assert _hows(events, mark) == ["swapped"], proc.output()
        same = ctx.container(name)
        assert same is not None and same.id == first.id, "a binary-only change recreated the container"
        assert same.status == "running"

        # The image follows: the tag holds what a fresh `kodev build` makes of the same sources.
        tagged = ctx.client.api.inspect_image(ctx.ref("server"))["Id"]
        built = kodev_build(["./cmd/server"], module)
        assert built.returncode == 0, built.output()
        assert [e["image_id"] for e in built.all("image.published")] == [tagged], (tagged, built.output())

        # A kodata file changed: in place too, the image following.
        mark = events.mark()
        (module / "cmd" / "server" / "kodata" / "banner.txt").write_text("swapped banner\n")
        page(proc, url, "swapped banner")
        assert _hows(events, mark) == ["swapped"], proc.output()
        kept = ctx.container(name)
        assert kept is not None and kept.id == first.id

        # A kodata file removed: a new image, a new container (still supervised).
        mark = events.mark()
        (module / "cmd" / "server" / "kodata" / "static" / "site.css").unlink()
        (module / "cmd" / "server" / "kodata" / "banner.txt").write_text("recreated banner\n")
        page(proc, url, "recreated banner")
        assert _hows(events, mark) == ["recreated"], proc.output()
        recreated = ctx.container(name)
        assert recreated is not None and recreated.id != first.id and _supervised(recreated)

        # And a binary change after the recreate swaps again, into the new container.
        mark = events.mark()
        _edit(module / "internal" / "greeting" / "greeting.go", '"Howdy, "', '"Hi again, "')
        page(proc, url, "Hi again, kodev!")
        assert _hows(events, mark) == ["swapped"], proc.output()
        again = ctx.container(name)
        assert again is not None and again.id == recreated.id

        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert ctx.container(name) is None, "the container was left behind"
        assert "Traceback" not in proc.output()
        assert events.fatal() == [], proc.output()
    finally:
        proc.kill()


def test_no_swap_recreates_and_does_not_use_the_supervisor(module: Path, ctx: Ctx) -> None:  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    name = ctx.name("noswap")
    with sigint_not_ignored():
        proc = KodevProcess(server(ctx, "noswap", port, "--watch", "--no-swap"), module, env={"KODEV_SWAP": "1"})
    events = Events(proc)
    try:
        page(proc, url, "Hello, kodev!", timeout=120)
        events.wait("watching", timeout=30)
        first = ctx.container(name)
        assert first is not None and not _supervised(first)
        mark = events.mark()
        _edit(module / "internal" / "greeting" / "greeting.go", '"Hello, "', '"Howdy, "')
        page(proc, url, "Howdy, kodev!")
        assert _hows(events, mark) == ["recreated"], proc.output()
        second = ctx.container(name)
        assert second is not None and second.id != first.id
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        # Watch mode links with -s -w by default ([watch] strip): a smaller binary than `kodev build`'s.
        watched = ctx.client.api.inspect_image(ctx.ref("server"))["Size"]
        built = kodev_build(["./cmd/server"], module)
        assert built.returncode == 0, built.output()
        assert ctx.client.api.inspect_image(ctx.ref("server"))["Size"] > watched + 1_000_000
    finally:
        proc.kill()


def test_a_binary_that_crashes_on_start_is_reported_and_the_next_good_build_recovers(
        module: Path, ctx: Ctx) -> None:  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    main = module / "cmd" / "server" / "main.go"
    good = main.read_text()
    with sigint_not_ignored():
        proc = KodevProcess(server(ctx, "crash", port, "--watch", "--swap"), module)
    events = Events(proc)
    try:
        page(proc, url, "Hello, kodev!", timeout=120)
        events.wait("watching", timeout=30)
        assert "func main() {" in good
        mark = events.mark()
        main.write_text(good.replace("func main() {", 'func main() {\n\tpanic("boom on start")', 1))
        exited = events.wait("service.exited", mark, lambda e: e["service"] == ctx.name("crash"), timeout=60)
        assert exited["code"] == 2, exited
        assert any("boom on start" in line for line in exited["last_lines"]), exited
        main.write_text(good)
        _edit(module / "internal" / "greeting" / "greeting.go", '"Hello, "', '"Back, "')
        page(proc, url, "Back, kodev!")
        assert proc.stop(signal.SIGINT) == 0, proc.output()
        assert ctx.container(ctx.name("crash")) is None
    finally:
        proc.kill()


def test_each_go_build_writes_a_new_file_so_a_hard_linked_binary_never_changes(hello: Path, tmp_path: Path
                                                                                ) -> None:
    """Mount mode hard-links the build's output into the container's directory: a later build must not
    write into that file (the running app's binary, and the one a restart would run, would change)."""
    go = find_go(None, {})
    command = resolve_commands(go, ["./cmd/hello"], hello)[0]
    out = tmp_path / "out"
    first = compile_commands(go, [BuildRequest(command)], out)[0]
    linked = tmp_path / "linked"
    os.link(first.path, linked)
    _edit(hello / "cmd" / "hello" / "main.go", "func main() {", "func main() {\n\tprintln(\"second build\")")
    second = compile_commands(go, [BuildRequest(command)], out)[0]
    assert second.path == first.path and second.digest != first.digest
    assert linked.stat().st_ino != second.path.stat().st_ino
    assert file_digest(linked) == first.digest  # the linked file still holds the first build
