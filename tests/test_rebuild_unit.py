"""One rebuild round (kodev/rebuild.py) composed from fakes behind its seams.

The real Go and daemon cannot produce these cases on demand (the same binary twice, a compile error or a
refused load at will, a daemon that vanishes between a refusal and the check), so the builder, the
destination, the daemon's ping and the deliveries are fakes (tests/fakes.py). The loop end to end is in
tests/integration/test_watch_rebuilds.py and test_default_path.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from kodev.deliver import Delivered, Delivery
from kodev.deliver.image_only import ImageOnly
from kodev.errors import CompileError, DaemonError
from kodev.health import DaemonLost
from kodev.rebuild import Rebuild, WatchedCommand
from kodev.ui import UI
from tests.fakes import FakeBuilder, FakeDaemon, FakeDelivery, FakePruning, RecordingPublisher, plan

A, Z = "example.com/m/cmd/aaa", "example.com/m/cmd/zzz"


@dataclass
class Round:
    rebuild: Rebuild
    builder: FakeBuilder
    destination: RecordingPublisher
    daemon: FakeDaemon
    err: io.StringIO
    log: list[tuple[str, ...]]
    delivered: list[Delivered]

    def run(self, compile_these: set[str], reimage_these: frozenset[str] = frozenset(),
            supersedable: bool = False) -> str:
        """One round; what it wrote to stderr."""
        mark = self.err.tell()
        self.rebuild.run(set(compile_these), set(reimage_these), supersedable)
        return self.err.getvalue()[mark:]

    def command(self, import_path: str) -> WatchedCommand:
        return next(c for c in self.rebuild.commands if c.import_path == import_path)

    def delivery(self, import_path: str) -> FakeDelivery:
        """The command's first delivery, a fake one (the tests that ask give it one)."""
        found = self.command(import_path).deliveries[0]
        assert isinstance(found, FakeDelivery)
        return found


def make(tmp_path: Path, deliveries: dict[str, list[Delivery]]) -> Round:
    destination = RecordingPublisher()
    daemon = FakeDaemon()
    builder = FakeBuilder(destination)
    err = io.StringIO()
    ui = UI(stdout=io.StringIO(), stderr=err)
    commands = [WatchedCommand(plan(tmp_path, path.rsplit("/", 1)[-1]), list(ds)) for path, ds in deliveries.items()]
    delivered: list[Delivered] = []
    rebuild = Rebuild(builder, FakePruning(), daemon, ui, commands, tmp_path, delivered.append)
    log: list[tuple[str, ...]] = []
    for command in commands:
        for delivery in command.deliveries:
            if isinstance(delivery, FakeDelivery):
                delivery.log = log
    return Round(rebuild, builder, destination, daemon, err, log, delivered)


def web() -> FakeDelivery:
    return FakeDelivery("web", [])


# --- what is published, and in which order ------------------------------------------------------------

def test_services_first_even_when_sorted_after_an_image_only_command(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()], Z: [web()]})
    out = loop.run({A, Z})
    assert loop.destination.sent == ["kodev.local/zzz:latest", "kodev.local/aaa:latest"]
    assert out.index("zzz") < out.index("aaa")
    assert loop.builder.compiled == [[A, Z]]  # one go build for both
    image = loop.command(Z).image
    assert image is not None and loop.log == [("begin", "web"), ("complete", "web", image.config_digest)]
    assert [d.service for d in loop.delivered] == ["web"]
    assert "built in" in out and "rebuilt" not in out


def test_unchanged_image_is_reported_and_nothing_is_published_or_delivered(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()], Z: [web()]})
    loop.run({A, Z})
    sent, logged, delivered = list(loop.destination.sent), list(loop.log), list(loop.delivered)
    out = loop.run({A, Z})  # same source: go build gives the same binaries
    assert loop.destination.sent == sent
    assert loop.log == logged and loop.delivered == delivered
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2 and all("unchanged" in line and "nothing restarted" in line for line in lines)


def test_unchanged_image_still_reaches_a_workload_that_is_down(tmp_path: Path) -> None:
    loop = make(tmp_path, {Z: [web()]})
    loop.run({Z})
    delivery = loop.delivery(Z)
    delivery.lost()  # its container exited
    loop.log.clear()
    out = loop.run({Z})
    assert loop.destination.sent == ["kodev.local/zzz:latest"]  # not published again
    assert loop.log == [("begin", "web"), ("complete", "web", "-")]  # delivered the image it has
    assert delivery.releases[-1].changed is False
    assert "rebuilt in" in out


def test_a_never_built_command_asked_to_reimage_is_compiled(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()]})
    loop.run(set(), frozenset({A}))
    assert loop.builder.compiled == [[A]]
    assert loop.destination.sent == ["kodev.local/aaa:latest"]


# --- a publish that fails ----------------------------------------------------------------------------

def test_publish_failure_aborts_every_pending_delivery_and_the_round_goes_on(tmp_path: Path) -> None:
    first, second = FakeDelivery("web", []), FakeDelivery("worker", [])
    loop = make(tmp_path, {A: [ImageOnly()], Z: [first, second]})
    loop.destination.fail["kodev.local/zzz:latest"] = DaemonError("the daemon refused zzz")
    out = loop.run({A, Z})
    assert loop.log == [("begin", "web"), ("begin", "worker"), ("abort", "web"), ("abort", "worker")]
    assert "error: the daemon refused zzz" in out
    assert loop.destination.sent == ["kodev.local/aaa:latest"]  # the next command was still published
    assert loop.command(Z).image is None and loop.command(Z).binary_layer is None  # not a good build yet
    assert loop.delivered == []


def test_a_client_error_while_publishing_is_reported_as_a_daemon_error(tmp_path: Path) -> None:
    loop = make(tmp_path, {Z: [web()]})
    loop.destination.fail["kodev.local/zzz:latest"] = ConnectionResetError("connection reset by peer")
    out = loop.run({Z})
    assert "the Docker daemon failed while publishing zzz" in out and "connection reset" in out
    assert loop.log == [("begin", "web"), ("abort", "web")]


def test_publish_failure_with_the_daemon_gone_raises_daemon_lost(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()], Z: [web()]})
    loop.destination.fail["kodev.local/zzz:latest"] = DaemonError("lost the daemon")
    loop.daemon.up = False
    with pytest.raises(DaemonLost):
        loop.run({A, Z})
    assert loop.log == [("begin", "web"), ("abort", "web")]
    assert loop.destination.sent == []  # the round ended there
    assert "error:" not in loop.err.getvalue()  # the loop says it once, not per command


# --- compile errors ----------------------------------------------------------------------------------

def compile_error() -> CompileError:
    return CompileError("go build failed for ./cmd/zzz", "cmd/zzz/main.go:3:1: syntax error\n")


def test_compile_error_before_any_build(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()], Z: [web()]})
    loop.builder.compile_error = compile_error()
    out = loop.run({A, Z})
    assert "error: go build failed" in out and "cmd/zzz/main.go:3:1: syntax error" in out
    assert "nothing has been built yet" in out
    assert loop.destination.sent == [] and loop.log == [] and loop.delivered == []


def test_compile_error_keeps_the_last_good_images(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()]})
    loop.run({A})
    good = loop.command(A).image
    loop.builder.compile_error = compile_error()
    out = loop.run({A})
    assert "the last good images stay in the daemon" in out
    assert loop.destination.sent == ["kodev.local/aaa:latest"] and loop.command(A).image == good


def test_compile_error_keeps_the_running_containers(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()], Z: [web()]})
    loop.run({A, Z})
    logged = list(loop.log)
    loop.builder.compile_error = compile_error()
    out = loop.run({A, Z})
    assert "the running containers keep the last good build" in out
    assert loop.log == logged and len(loop.destination.sent) == 2


# --- a compile that newer saves supersede --------------------------------------------------------------

def test_a_superseded_round_delivers_nothing_and_the_next_round_does_its_work(tmp_path: Path) -> None:
    loop = make(tmp_path, {A: [ImageOnly()], Z: [web()]})
    loop.run({A, Z})
    sent, logged = list(loop.destination.sent), list(loop.log)
    loop.builder.binaries[Z] = "v2"
    newer_saves = [True]
    loop.rebuild.superseded = lambda: bool(newer_saves) and newer_saves.pop()
    out = loop.run({Z}, frozenset({A}), supersedable=True)
    assert "newer saves came during the build of zzz" in out
    assert loop.destination.sent == sent and loop.log == logged  # nothing published, nothing delivered
    assert loop.rebuild.carried
    out = loop.run(set(), supersedable=True)  # the next round was started by a save that changed nothing here
    assert not loop.rebuild.carried
    assert loop.builder.compiled[-1] == [Z]
    assert loop.destination.sent[len(sent):] == ["kodev.local/zzz:latest"]
    assert "aaa" in out  # re-imaged (its kodata is the same here: unchanged)


def test_only_a_round_started_by_saves_can_be_superseded(tmp_path: Path) -> None:
    loop = make(tmp_path, {Z: [web()]})
    loop.rebuild.superseded = lambda: True
    loop.run({Z})  # the first build, a recovery, a reload: they finish
    assert loop.destination.sent == ["kodev.local/zzz:latest"] and not loop.rebuild.carried


# --- Release.binary: set only when the binary layer is all that changed -------------------------------

def test_release_binary_only_when_just_the_binary_changed(tmp_path: Path) -> None:
    loop = make(tmp_path, {Z: [web()]})
    delivery = loop.delivery(Z)
    loop.run({Z})
    assert delivery.releases[-1].binary is None  # first build: nothing to swap into

    loop.builder.binaries[Z] = "v2"
    del loop.log[:]
    loop.builder.log = loop.log  # binary layers in the same record as begins
    loop.run({Z})
    release = delivery.releases[-1]
    assert release.changed and release.binary == tmp_path / "zzz"
    # Begun before the binary layer and the image are made: a swap serves first, the image follows.
    # The kodata is read once, first; then the swap begins, and the binary layer and image follow.
    assert release.image is None and loop.log[:3] == [("kodata", Z), ("begin", "web"), ("layer", Z)], loop.log
    assert loop.log.count(("kodata", Z)) == 1
    assert len(loop.destination.sent) == 2

    loop.run({Z})  # the same binary again: nothing changed, nothing begun
    assert len(delivery.releases) == 2 and len(loop.destination.sent) == 2

    loop.builder.binaries[Z], loop.builder.kodata[Z] = "v3", "new page"
    loop.run({Z})
    assert delivery.releases[-1].changed and delivery.releases[-1].binary is None  # kodata changed too
    assert delivery.releases[-1].image is not None

    loop.builder.kodata[Z] = "newer page"
    loop.run(set(), frozenset({Z}))  # a kodata edit: re-imaged, not compiled
    assert loop.builder.compiled[-1] == [Z] and len(loop.builder.compiled) == 4
    assert delivery.releases[-1].changed and delivery.releases[-1].binary is None
    assert len(loop.destination.sent) == 4


def test_a_kodata_edit_that_lands_during_a_swap_is_delivered_by_the_next_round(tmp_path: Path) -> None:
    """Issue 18: the image of a swapped round was assembled after serving from kodata read *then*, so the
    next round compared against a kodata the container never got and said "unchanged"."""
    loop = make(tmp_path, {Z: [web()]})
    delivery = loop.delivery(Z)
    loop.run({Z})
    loop.builder.binaries[Z] = "v2"
    edits = iter(["edited while the swap served"])

    def edit_during_the_round(*_: object) -> None:  # lands after the swap began, before the image is made
        if delivery.releases and delivery.releases[-1].binary is not None:
            loop.builder.kodata[Z] = next(edits, loop.builder.kodata.get(Z, ""))

    loop.builder.on_layer = edit_during_the_round
    loop.run({Z})
    assert delivery.releases[-1].binary is not None  # swapped
    image = loop.command(Z).image
    assert image is not None and image.layers[1].created_by == f"kodata:{Z}:"  # what was delivered
    out = loop.run(set(), frozenset({Z}))  # the edit's own round
    assert "unchanged" not in out, out
    assert delivery.releases[-1].changed and delivery.releases[-1].binary is None
