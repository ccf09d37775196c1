"""`kodev watch` end to end: a copy of examples/hello, kodev as a subprocess, real `go`, real dockerd.

Every test writes its own kodev.toml (its own image repository and service names, so that concurrent runs
on one daemon never meet), starts `kodev watch`, edits files and waits, with a deadline, for what kodev
prints on stderr, what the services serve on 127.0.0.1 (host network) and what the daemon holds.
Only "nothing happened" is checked by a short settle wait.

kodev runs with its defaults: a binary-only change is swapped into the running container (same container ID).
Where a scenario's outcome differs when containers are recreated instead (KODEV_SWAP=0), the test takes the
`delivery` fixture and runs under both.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import delivered_word, run_kodev
from tests.integration.process import KodevProcess, fetch, free_port, sigint_not_ignored, wait_for_page, wait_until

SETTLE = 3.0  # seconds to wait when proving that nothing is rebuilt (kodev reacts to a change in well under 1 s)
GREETING = "internal/greeting/greeting.go"
GREETING_SOURCE = '''// Package greeting is shared by both commands: edit it and both images are rebuilt.
package greeting

// Message is the greeting both commands print.
func Message(name string) string {
	return "%s, " + name + "!"
}
'''


# --- helpers -----------------------------------------------------------------------------------------

@dataclass
class Session:
    """One running `kodev watch`: the process, the module it watches, its service names and port."""

    proc: KodevProcess
    module: Path
    repo: str
    server: str  # the server's service (and container) name
    hello: str  # the hello service name, when hello runs as a service
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stages(self, command: str) -> list[str]:
        """Every per-command stage line kodev printed for `command` (built, rebuilt, unchanged)."""
        pattern = re.compile(rf"^\s+{re.escape(command)}\s+(built in|rebuilt in|unchanged)\b")
        return [line for line in self.proc.err_lines() if pattern.search(line)]

    def rebuilt(self, command: str) -> list[str]:
        return [line for line in self.stages(command) if " rebuilt in " in line]

    def wait_rebuilt(self, command: str, count: int, timeout: float = 90) -> str:
        """Wait for the `count`-th 'rebuilt' line of `command`; that line."""
        self.proc.wait_for(rf"^\s+{re.escape(command)}\s+rebuilt in ", count=count, timeout=timeout)
        return self.rebuilt(command)[count - 1]




def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def set_greeting(module: Path, word: str) -> None:
    write(module / GREETING, GREETING_SOURCE % word)


def containers(client: Any, service: str) -> list[Any]:
    """kodev's containers for `service`, running or not."""
    # ignore_removed: the list inspects each one, and one removed meanwhile is not an error
    return list(client.containers.list(all=True, filters={"label": f"dev.kodev.service={service}"},
                                       ignore_removed=True))


def container_id(client: Any, service: str) -> str:
    """The ID of the one container kodev runs for `service` (waits for it to exist)."""
    found: list[Any] = []

    def one() -> bool:
        found[:] = containers(client, service)
        return len(found) == 1

    wait_until(one, 30, lambda: f"expected one container for {service}, found {[c.short_id for c in found]}")
    return str(found[0].id)


def image_id(client: Any, ref: str) -> str:
    return str(client.api.inspect_image(ref)["Id"])


def assert_delivered(client: Any, session: Session, line: str, old: str, delivery: str) -> None:
    """After a binary-only change of the server, announced by result `line`: swapped into the container that
    served before (`old`), or (recreate) served by a new container, the old one gone."""
    assert re.search(rf"\b{delivered_word(delivery)} [\d.]+s", line), f"{line}\n{session.proc.output()}"
    now = container_id(client, session.server)
    if delivery == "swap":
        assert now == old, f"a binary-only change recreated the container\n{session.proc.output()}"
    else:
        assert now != old, f"the container was not recreated on the new image\n{session.proc.output()}"




@contextlib.contextmanager
def watching(module: Path, repo: str, client: Any, *, hello: str = "", restart: bool = True,
             extra: str = "", started: bool = True, uid: str = "", port: int = 0) -> Iterator[Session]:
    """`kodev watch` on `module`, with a server service (host network), and hello as a service
    (`hello="service"`), as a build-only command (`hello="command"`) or not at all. With `started`, waits
    for "watching" and until the server serves its page; else yields at once. Afterwards kodev is
    killed and every container it created is removed. `uid` names the services, `port` is the server's."""
    uid = uid or uuid.uuid4().hex[:8]
    server, hello_service, port = f"srv-{uid}", f"hi-{uid}", port or free_port()
    config = f'''repo = "{repo}"

[services.{server}]
command = "./cmd/server"
args = ["-addr", "127.0.0.1:{port}"]
network = "host"
stop_timeout = 3
restart = {"true" if restart else "false"}
'''
    if hello == "service":
        config += f'''
[services.{hello_service}]
command = "./cmd/hello"
args = ["kodev-test"]
network = "host"
stop_timeout = 3
'''
    elif hello == "command":
        config += '\n[commands."./cmd/hello"]\n'
    write(module / "kodev.toml", config + extra)
    with sigint_not_ignored():
        proc = KodevProcess(["watch"], cwd=module)
    session = Session(proc, module, repo, server, hello_service if hello == "service" else "", port)
    try:
        if started:
            proc.wait_for(r"^watching ", timeout=120)
            assert "Traceback" not in proc.output(), proc.output()
            wait_for_page(session.url, "Hello, kodev!", timeout=30)
        yield session
        assert "Traceback" not in proc.output(), proc.output()
    finally:
        proc.kill()
        for container in client.containers.list(
                all=True, filters={"label": f"dev.kodev.owner.pid={proc.process.pid}"}):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def settle_and_assert_quiet(session: Session, before: list[str]) -> None:
    """Wait SETTLE seconds; stderr must not have grown by a change or any stage line."""
    time.sleep(SETTLE)
    new = session.proc.err_lines()[len(before):]
    noisy = [line for line in new if re.search(r"^changed: |\b(re)?built in |\bunchanged\b|^error:", line)]
    assert not noisy, f"expected nothing to be rebuilt, got: {noisy}\n{session.proc.output()}"


# --- what a change rebuilds --------------------------------------------------------------------------

def test_shared_package_edit_rebuilds_both_and_delivers_both(hello: Path, repo: str, docker_client: Any,
                                                             delivery: str) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        s.proc.wait_for(rf"^{s.hello}\s* \| Hello, kodev-test!$", stream="stdout", timeout=30)
        old_server, old_hello = container_id(docker_client, s.server), container_id(docker_client, s.hello)
        old_images = image_id(docker_client, f"{repo}/server:latest"), image_id(docker_client, f"{repo}/hello:latest")

        set_greeting(hello, "Howdy")

        line = s.wait_rebuilt("server", 1)
        s.wait_rebuilt("hello", 1)
        assert any(line.startswith("changed: ") and GREETING in line for line in s.proc.err_lines())
        wait_for_page(s.url, "Howdy, kodev!", timeout=30)
        assert_delivered(docker_client, s, line, old_server, delivery)
        s.proc.wait_for(rf"^{s.hello}\s* \| Howdy, kodev-test!$", stream="stdout", timeout=30)
        # hello had exited: whatever the delivery, it runs again in a new container
        assert container_id(docker_client, s.hello) != old_hello
        new_images = image_id(docker_client, f"{repo}/server:latest"), image_id(docker_client, f"{repo}/hello:latest")
        assert all(new != old for new, old in zip(new_images, old_images, strict=True))


def test_command_edit_rebuilds_only_that_command(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        s.proc.wait_for(rf"^{s.hello}\s* \| Hello, kodev-test!$", stream="stdout", timeout=30)
        assert fetch(s.url + "healthz") == "ok\n"
        old_server, old_hello = container_id(docker_client, s.server), container_id(docker_client, s.hello)
        old_hello_image = image_id(docker_client, f"{repo}/hello:latest")
        hello_stages = len(s.stages("hello"))

        main = hello / "cmd/server/main.go"
        main.write_text(main.read_text().replace('fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "ok, edited")'))

        line = s.wait_rebuilt("server", 1)
        wait_for_page(s.url + "healthz", "ok, edited", timeout=30)
        assert_delivered(docker_client, s, line, old_server, "swap")
        # hello would have been compiled in the same round, before server (both are printed in order)
        assert len(s.stages("hello")) == hello_stages, s.proc.output()
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
        main.write_text(edited)

        s.proc.wait_for(r"^\s+server\s+unchanged ", timeout=60)
        assert not s.rebuilt("server"), s.proc.output()
        assert container_id(docker_client, s.server) == old
        assert image_id(docker_client, f"{repo}/server:latest") == old_image
        assert "Hello, kodev!" in (fetch(s.url) or "")


def test_tests_docs_and_other_platforms_rebuild_nothing(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        before = s.proc.err_lines()
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
        settle_and_assert_quiet(s, before)
        # Edit them again (now files the package graph knows about): still nothing.
        before = s.proc.err_lines()
        write(package / "greeting_test.go", (package / "greeting_test.go").read_text() + "\n// more\n")
        write(package / "greeting_win.go", (package / "greeting_win.go").read_text() + "\n// more\n")
        write(hello / "README.md", "# hello\n\nEdited twice.\n")
        settle_and_assert_quiet(s, before)
        assert container_id(docker_client, s.server) == old

        # The watcher is still alive: a real edit is picked up.
        set_greeting(hello, "Still watching")
        s.wait_rebuilt("server", 1)
        wait_for_page(s.url, "Still watching, kodev!", timeout=30)


def test_kodata_edit_reimages_without_go_build(hello: Path, repo: str, docker_client: Any, delivery: str) -> None:
    """A kodata change is a new image: the container is recreated on it, swapping on or off."""
    with watching(hello, repo, docker_client, hello="command") as s:
        hello_image = image_id(docker_client, f"{repo}/hello:latest")
        old = container_id(docker_client, s.server)

        # banner.txt reaches kodata through a symlink: edit the file it points at
        assert (hello / "cmd/server/kodata/banner.txt").is_symlink()
        write(hello / "assets/banner.txt", "Banner edited through the link.\n")
        line = s.wait_rebuilt("server", 1)
        assert "(go " not in line and "image " in line, line
        wait_for_page(s.url, "Banner edited through the link.", timeout=30)
        assert container_id(docker_client, s.server) != old

        recreated = container_id(docker_client, s.server)
        index = hello / "cmd/server/kodata/index.html"
        index.write_text(index.read_text().replace("<h1>", "<h1>Index edited: "))
        line = s.wait_rebuilt("server", 2)
        assert "(go " not in line, line
        wait_for_page(s.url, "Index edited: Hello, kodev!", timeout=30)
        assert container_id(docker_client, s.server) != recreated

        assert not s.rebuilt("hello"), s.proc.output()
        assert image_id(docker_client, f"{repo}/hello:latest") == hello_image


def test_new_package_is_watched_once_imported(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        write(hello / "internal/extra/extra.go", 'package extra\n\n// Word is served by /healthz.\n'
              'func Word() string { return "alpha" }\n')
        main = hello / "cmd/server/main.go"
        text = main.read_text()
        text = text.replace('"example.com/hello/internal/greeting"',
                            '"example.com/hello/internal/extra"\n\t"example.com/hello/internal/greeting"')
        text = text.replace('fmt.Fprintln(w, "ok")', 'fmt.Fprintln(w, "ok", extra.Word())')
        main.write_text(text)

        s.wait_rebuilt("server", 1)
        wait_for_page(s.url + "healthz", "ok alpha", timeout=30)

        write(hello / "internal/extra/extra.go", 'package extra\n\n// Word is served by /healthz.\n'
              'func Word() string { return "beta" }\n')
        s.wait_rebuilt("server", 2)
        wait_for_page(s.url + "healthz", "ok beta", timeout=30)


def test_compile_error_keeps_old_container_then_fix_recovers(hello: Path, repo: str, docker_client: Any,
                                                            delivery: str) -> None:
    with watching(hello, repo, docker_client) as s:
        old = container_id(docker_client, s.server)
        broken = (hello / GREETING).read_text().replace('name + "!"', 'name + 1')
        (hello / GREETING).write_text(broken)

        s.proc.wait_for(r"greeting\.go:\d+:\d+: ", timeout=60)
        assert any(line.startswith("error:") for line in s.proc.err_lines()), s.proc.output()
        assert not s.rebuilt("server")
        assert container_id(docker_client, s.server) == old
        assert "Hello, kodev!" in (fetch(s.url) or ""), "the old container stopped serving after a failed build"

        set_greeting(hello, "Fixed")
        line = s.wait_rebuilt("server", 1)
        wait_for_page(s.url, "Fixed, kodev!", timeout=30)
        assert_delivered(docker_client, s, line, old, delivery)


def test_rapid_writes_coalesce(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        rounds_before = s.proc.count(r"^changed: ")
        for i in range(50):
            set_greeting(hello, f"Save {i:02d}")

        wait_for_page(s.url, "Save 49, kodev!", timeout=60)
        time.sleep(SETTLE)  # a late extra round would show up now
        # A round may catch a file half written (a compile error): it still counts as a build.
        rounds = s.proc.count(r"^changed: ") - rounds_before
        assert 1 <= rounds <= 2, f"{rounds} build rounds for 50 rapid writes:\n{s.proc.output()}"
        assert re.search(r"\b(rebuilt in|unchanged)\b", s.stages("server")[-1])
        assert "Save 49, kodev!" in (fetch(s.url) or "")


def test_atomic_save_and_delete_then_create(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client) as s:
        target = hello / GREETING
        # An atomic save: a temporary file in the same directory, renamed over the original.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".greeting.go.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(GREETING_SOURCE % "Atomic")
        os.replace(temp, target)
        s.wait_rebuilt("server", 1)
        wait_for_page(s.url, "Atomic, kodev!", timeout=30)

        # An editor that deletes the file, then writes it anew.
        target.unlink()
        target.write_text(GREETING_SOURCE % "Recreated")
        s.wait_rebuilt("server", 2)
        wait_for_page(s.url, "Recreated, kodev!", timeout=30)


# --- stopping ----------------------------------------------------------------------------------------

def _assert_all_removed(client: Any, proc: KodevProcess, services: list[str]) -> None:
    owned = client.containers.list(all=True, filters={"label": f"dev.kodev.owner.pid={proc.process.pid}"},
                                   ignore_removed=True)
    assert not owned, f"left behind: {[c.name for c in owned]}\n{proc.output()}"
    for service in services:
        assert not containers(client, service), f"{service} left behind\n{proc.output()}"


def test_sigint_stops_and_removes_everything(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        assert containers(docker_client, s.server) and containers(docker_client, s.hello)
        code = s.proc.stop(signal.SIGINT, timeout=30)
        assert code == 0, s.proc.output()
        _assert_all_removed(docker_client, s.proc, [s.server, s.hello])
        assert fetch(s.url) is None


def test_sigterm_during_a_rebuild_stops_and_removes_everything(hello: Path, repo: str, docker_client: Any) -> None:
    import docker.errors

    old_images = []
    with watching(hello, repo, docker_client, hello="service") as s:
        old_images = [image_id(docker_client, f"{repo}/{name}:latest") for name in ("server", "hello")]
        set_greeting(hello, "Interrupted")
        s.proc.wait_for(r"^changed: ", timeout=30)  # a build, load or restart is under way
        code = s.proc.stop(signal.SIGTERM, timeout=30)
        assert code == 0, s.proc.output()
        _assert_all_removed(docker_client, s.proc, [s.server, s.hello])
        assert fetch(s.url) is None
    # Interrupted between loading a new image and dropping the one it replaced, kodev may leave that one.
    for old in old_images:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            docker_client.images.remove(old)


def test_restart_false_service_is_left_running(hello: Path, repo: str, docker_client: Any) -> None:
    keep_port = free_port()
    uid = uuid.uuid4().hex[:8]
    kept = f"keep-{uid}"
    extra = f'''
[services.{kept}]
command = "./cmd/server"
args = ["-addr", "127.0.0.1:{keep_port}"]
network = "host"
stop_timeout = 3
restart = false
'''
    try:
        with watching(hello, repo, docker_client, extra=extra) as s:
            keep_url = f"http://127.0.0.1:{keep_port}/"
            wait_for_page(keep_url, "Hello, kodev!", timeout=30)
            kept_id = container_id(docker_client, kept)

            set_greeting(hello, "Rebuilt")
            s.wait_rebuilt("server", 1)
            wait_for_page(s.url, "Rebuilt, kodev!", timeout=30)
            # restart = false: started once, not recreated by a rebuild
            assert container_id(docker_client, kept) == kept_id
            assert "Hello, kodev!" in (fetch(keep_url) or "")

            code = s.proc.stop(signal.SIGINT, timeout=30)
            assert code == 0, s.proc.output()
            assert not containers(docker_client, s.server), s.proc.output()
            left = containers(docker_client, kept)
            assert [c.id for c in left] == [kept_id], s.proc.output()
            left[0].reload()
            assert left[0].status == "running"
            assert "Hello, kodev!" in (fetch(keep_url) or "")
    finally:
        for container in containers(docker_client, kept):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_sigkill_then_a_new_watch_removes_the_stale_container(hello: Path, repo: str, docker_client: Any,
                                                             delivery: str) -> None:
    import docker.errors

    uid, port = uuid.uuid4().hex[:8], free_port()
    with watching(hello, repo, docker_client, uid=uid, port=port) as first:
        stale = container_id(docker_client, first.server)
        first.proc.kill()  # SIGKILL: no cleanup
        # The same service name and port: the stale container holds both until it is removed. Every kodev
        # removes the containers of dead kodevs when it starts, so on this shared daemon another test's kodev
        # may be the one that removes it (the message naming what was removed is checked on a daemon of its
        # own: test_newcomer.py's test_daemon_gone_at_cleanup_...); either way the next watch starts.
        with watching(hello, repo, docker_client, uid=uid, port=port) as second:
            with pytest.raises(docker.errors.NotFound):
                docker_client.containers.get(stale)
            serving = container_id(docker_client, second.server)
            assert serving != stale
            set_greeting(hello, "Second session")
            line = second.wait_rebuilt("server", 1)
            wait_for_page(second.url, "Second session, kodev!", timeout=30)
            assert_delivered(docker_client, second, line, serving, delivery)


def test_name_taken_by_a_foreign_container_is_a_clear_error(hello: Path, repo: str, docker_client: Any) -> None:
    uid = uuid.uuid4().hex[:8]
    write(hello / "kodev.toml", f'repo = "{repo}"\n')
    built = run_kodev(["build", "./cmd/hello"], hello)
    assert built.returncode == 0, built.stderr
    foreign = docker_client.containers.create(f"{repo}/hello:latest", name=f"srv-{uid}", network_mode="host",
                                              labels={"test.owner": "not-kodev"})
    try:
        with watching(hello, repo, docker_client, uid=uid, started=False) as s:
            code = s.proc.process.wait(timeout=60)
            err = "\n".join(s.proc.err_lines())
            assert code != 0, s.proc.output()
            assert re.search(r"^error: ", err, re.M), s.proc.output()
            assert f"srv-{uid}" in err and "kodev did not create it" in err, s.proc.output()
            assert "Traceback" not in err
            assert " built in " not in err, "kodev built before it found the name taken"
        foreign.reload()  # still there (NotFound otherwise), untouched
        assert foreign.status == "created" and foreign.labels.get("test.owner") == "not-kodev"
    finally:
        foreign.remove(force=True)


def test_logs_are_multiplexed_with_service_prefixes(hello: Path, repo: str, docker_client: Any) -> None:
    with watching(hello, repo, docker_client, hello="service") as s:
        width = max(len(s.server), len(s.hello))
        s.proc.wait_for(rf"^{s.server}\s* \| .*server listening on http://127\.0\.0\.1:{s.port}",
                        stream="stdout", timeout=30)
        s.proc.wait_for(rf"^{s.hello}\s* \| Hello, kodev-test!$", stream="stdout", timeout=30)
        for line in s.proc.out_lines():
            assert re.match(rf"^({s.server}|{s.hello})\s* \| ", line), f"unprefixed stdout line: {line!r}"
            assert line.index(" | ") == width, f"prefix not padded to the longest name: {line!r}"


def test_save_made_as_watching_is_printed_is_rebuilt(hello: Path, repo: str, docker_client: Any) -> None:
    """kodev prints "watching … save a file to rebuild": a save made the moment that line is out counts."""
    with watching(hello, repo, docker_client, started=False) as s:
        deadline = time.monotonic() + 120
        while s.proc.count(r"^watching ") == 0:  # no 50 ms polling here: save as soon as the line is out
            assert time.monotonic() < deadline and s.proc.process.poll() is None, s.proc.output()
            time.sleep(0.001)
        set_greeting(hello, "Saved at once")
        wait_for_page(s.url, "Saved at once, kodev!", timeout=15)
