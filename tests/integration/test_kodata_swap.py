"""Issue 20: a kodata edit reaches the running container in place, like a new binary — no recreate (no image
load, no container start on the way to serving) — and the app restarts to read it (apps often read their
kodata once, at start). Real Go, real dockerd, kodev's defaults; the copy mode (the daemon cannot see kodev's
files) is run too. A client connecting every 2 ms meanwhile is never refused: the supervisor keeps the app's
listening socket open while it restarts (kodev/supervisor/held.go); how long it waits is the benchmark's to
measure (bench/).

A removed kodata file cannot be taken away in place (the container's user may not write /var/run/ko, and
extracting an archive only adds): that recreates, and so does a change under recreate (`KODEV_SWAP=0`).
"""

from __future__ import annotations

import pytest

from tests.integration.modules import Module, set_greeting, write
from tests.integration.process import wait_until
from tests.integration.refusals import Refusals
from tests.integration.test_default_path import KODATA_PAGE, JsonWatch, watching

COPY = {"KODEV_SWAP_COPY": "1"}  # the binary goes down the control channel, as for a remote daemon


def restarts(s: JsonWatch, since: int) -> int:
    """How many times the app started since `since`: the hello server logs a line when it listens."""
    return len([e for e in s.events()[since:] if e["event"] == "service.log" and "server listening" in e["line"]])


@pytest.mark.parametrize("env", [{}, COPY], ids=["mount", "copy"])
def test_a_kodata_edit_is_swapped_in_with_no_refused_connection(mod: Module, env: dict[str, str]) -> None:
    page = mod.path / KODATA_PAGE
    with watching(mod, env) as s:
        s.wait("service.log", 0, lambda e: "server listening" in e["line"])  # the first start's, before the mark
        first = [c["Id"] for c in s.containers()]
        # What the supervisor needs to hold the app's socket (pidfd_getfd, under Docker's seccomp profile).
        assert mod.client.api.inspect_container(first[0])["HostConfig"]["CapAdd"] == ["SYS_PTRACE"]
        mark = s.mark()
        with Refusals(s.port) as client:
            page.write_text(page.read_text() + "\n<p>kodata in place</p>\n")
            wait_until(lambda: client.answered("kodata in place"), 30, s.proc.output)
        assert client.refused == 0, s.proc.output()
        assert s.wait("delivered", mark)["how"] == "swapped", s.proc.output()
        assert [c["Id"] for c in s.containers()] == first  # the same container: never recreated
        s.wait("service.log", mark, lambda e: "server listening" in e["line"])
        assert restarts(s, mark) == 1, s.proc.output()  # the app started again, to read its kodata anew
        result = s.wait("command.result", mark)
        assert result["outcome"] == "rebuilt" and result["ref"], result  # the image follows
        # Then a Go edit and the kodata of a link target (assets/banner.txt) in one save: both in place.
        mark = s.mark()
        with Refusals(s.port) as client:
            write(mod.path / "assets/banner.txt", "a banner swapped in\n")
            set_greeting(mod, "Both")
            wait_until(lambda: client.answered("Both, kodev!"), 30, s.proc.output)
        assert client.refused == 0, s.proc.output()
        s.page("a banner swapped in", timeout=30)
        assert [e["how"] for e in s.events("delivered")[-1:]] == ["swapped"], s.proc.output()
        assert len(s.containers()) == 1
        s.stop()


def test_a_removed_kodata_file_recreates_the_container(mod: Module) -> None:
    static = mod.path / "cmd/server/kodata/static"
    write(static / "extra.css", "p{}")
    with watching(mod) as s:
        first = [c["Id"] for c in s.containers()]
        mark = s.mark()
        (static / "extra.css").unlink()
        page = mod.path / KODATA_PAGE
        page.write_text(page.read_text() + "\n<p>after a removal</p>\n")
        s.page("after a removal", timeout=30)
        assert s.wait("delivered", mark)["how"] == "recreated"
        assert [c["Id"] for c in s.containers()] != first
        mark = s.mark()  # and the next kodata edit is in place again
        page.write_text(page.read_text() + "\n<p>in place again</p>\n")
        s.page("in place again", timeout=30)
        assert s.wait("delivered", mark)["how"] == "swapped"
        s.stop()
