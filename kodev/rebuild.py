"""One rebuild round: compile what a change affects, image each command, publish it, deliver it, report it.

Commands that services run go first, so the path to serving never waits for an image-only command.
A compile error keeps every workload on its last good build; a daemon that stops answering ends the
round early (the loop notices and recovers when it is back).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from docker.errors import DockerException

from kodev.builder import ImageBuilder, Snapshot
from kodev.deliver import Delivered, Delivery, Done, Pending, Release
from kodev.directbuild import DirectBuilds
from kodev.errors import CompileError, DaemonError, KodevError
from kodev.gobuild import Binary, Superseded, go_time
from kodev.health import DaemonLost
from kodev.image.assemble import Image
from kodev.image.kodata import KODATA_DIR, KodataIndex, kodata_patch
from kodev.image.layers import Layer
from kodev.plan import CommandPlan
from kodev.publish import ImagePruner, Published
from kodev.report import CommandReport
from kodev.templates import GitHead
from kodev.ui import UI

# Kodata files that changed reach running containers in place up to this size in all (a recreate beyond).
KODATA_IN_PLACE_MAX_BYTES = 32 * 1024 * 1024


class Reachable(Protocol):
    """Whether the daemon answers (asked when a round fails: a refusal, or the daemon gone?)."""

    def reachable(self) -> bool: ...


@dataclass
class WatchedCommand:
    """One command in the loop: its plan, the deliveries of its image, and its last good build. Its fields
    are written by its own methods only."""

    plan: CommandPlan
    deliveries: list[Delivery]
    binary_layer: Layer | None = None  # of the last good build
    binary_digest: str | None = None  # of the last good binary (a rebuild that matches it changes nothing)
    image: Image | None = None  # the image last published
    sources: frozenset[Path] = field(default_factory=frozenset)  # kodata dir and its link targets
    kodata_index: KodataIndex = field(default_factory=KodataIndex)  # the files of the image's kodata layer

    def __post_init__(self) -> None:
        if not self.sources:  # link targets are known after the first snapshot
            self.sources = frozenset({(self.plan.command.dir / KODATA_DIR).absolute()})

    @property
    def import_path(self) -> str:
        return self.plan.command.import_path

    @property
    def serves(self) -> bool:
        return any(d.service is not None for d in self.deliveries)

    def published(self, image: Image, binary_digest: str | None, kodata: KodataIndex) -> None:
        """`image` reached the daemon: it is what the next round compares against."""
        self.image, self.binary_layer, self.kodata_index = image, image.layers[-1], kodata
        if binary_digest is not None:
            self.binary_digest = binary_digest

    def read(self, snapshot: Snapshot) -> None:
        self.sources = snapshot.sources

    def forget_image(self) -> None:
        """The daemon may have lost the image (it restarted): the next round sends it again."""
        self.image = None

    def take_over(self, previous: WatchedCommand) -> None:
        """The same command under a reloaded kodev.toml: its last good build is this one's to compare against."""
        self.binary_layer, self.binary_digest = previous.binary_layer, previous.binary_digest
        self.image, self.sources, self.kodata_index = previous.image, previous.sources, previous.kodata_index


@dataclass
class Rebuild:
    """Runs rounds for a fixed set of commands (a changed kodev.toml makes a new Rebuild). `on_delivered` is
    told of every container a round starts (the loop follows its logs); `strip` links with -s -w (not with
    `debug`)."""

    builder: ImageBuilder
    pruning: ImagePruner
    daemon: Reachable
    ui: UI
    commands: list[WatchedCommand]
    scratch: Path
    on_delivered: Callable[[Delivered], None]
    strip: bool = False
    debug: bool = False  # kodev debug: binaries built for Delve (gobuild.for_debugging)
    direct: DirectBuilds | None = None  # main-only edits compiled and linked without go build
    # Told of each compile's end: its error (the compiler's output), or success (the dev proxies' overlay).
    build_failed: Callable[[str], None] = lambda output: None
    build_ok: Callable[[], None] = lambda: None
    run_ref: Callable[[CommandPlan], str] = lambda plan: plan.ref  # where a container of its image runs from
    # Asked while a round compiles: have newer saves come? (The loop's Coalescer answers.)
    superseded: Callable[[], bool] = lambda: False
    # What a superseded round left to do (import paths to compile, to re-image): the next round does it.
    _carried: tuple[set[str], set[str]] = field(default_factory=lambda: (set(), set()), init=False, repr=False)
    _git: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="git"),
                                     init=False, repr=False)

    @property
    def carried(self) -> bool:
        """Whether a superseded round left work that the next round must do, whatever it was started for."""
        return any(self._carried)

    def run(self, compile_these: set[str], reimage_these: set[str], supersedable: bool = False) -> None:
        """Rebuild the commands named (import paths); raises DaemonLost if the daemon went away.

        With `supersedable` (a round started by saves), newer saves that come while it compiles give the
        compile up: nothing is delivered, and the next round does this one's work too. The last save of a
        burst is then served one build after the burst, not after each build the burst would have started."""
        carried_compile, carried_reimage = self._carried
        compile_these, reimage_these = compile_these | carried_compile, reimage_these | carried_reimage
        self._carried = (set(), set())
        by_path = {c.import_path: c for c in self.commands}
        # HEAD may have moved: read once per round, while `go build` runs (off the path to serving).
        git = self._git.submit(self.builder.heads, [c.plan.command for c in self.commands])
        # Without a good binary yet there is nothing to re-image: compile instead.
        compile_these |= {p for p in reimage_these if p in by_path and by_path[p].binary_layer is None}
        compiling = [by_path[p] for p in sorted(compile_these) if p in by_path]
        try:
            compiled, go_seconds = self._compile(compiling, self.superseded if supersedable else None)
            go_only = go_time(list(compiled.values()))  # reported: the go command's own, without the digests
        except Superseded:
            self._carried = (compile_these, reimage_these)
            self.ui.superseded([c.plan.name for c in compiling])
            return
        reimaging = [by_path[p] for p in sorted(reimage_these - set(compiled)) if p in by_path
                     and by_path[p].binary_layer is not None]
        ordered = sorted([*(c for c in compiling if c.import_path in compiled), *reimaging],
                         key=lambda c: not c.serves)  # services first: they are what someone waits for
        for command in ordered:
            done = compiled.get(command.import_path)
            try:
                self._release(command, done, go_seconds if done else None, _head(git, command),
                              go_only if done else None)
            except (KodevError, OSError, DockerException) as exc:  # the SDK's: mostly OSErrors (requests)
                if not self.daemon.reachable():
                    raise DaemonLost from None
                if not isinstance(exc, KodevError):
                    exc = DaemonError(f"the Docker daemon failed while publishing {command.plan.name}: {exc}")
                self.ui.error(exc)
        self.pruning.prune()  # the replaced images: their containers are gone now
        self.builder.prune({layer.path for c in self.commands if c.image for layer in c.image.layers})

    def _compile(self, compiling: list[WatchedCommand], superseded: Callable[[], bool] | None
                 ) -> tuple[dict[str, Binary], float | None]:
        if not compiling:
            return {}, None
        try:
            binaries, go_seconds = self.builder.compile([c.plan for c in compiling], self.scratch,
                                                        strip=self.strip, superseded=superseded,
                                                        debug=self.debug,
                                                        # Learned and used where saves happen: not for the
                                                        # first build or a reload's, when every command builds.
                                                        direct=self.direct if superseded is not None else None)
        except CompileError as exc:
            self.ui.error(exc)
            self.ui.warn(f"build failed; {self.what_stays()}. Save a fix to try again.")
            self.build_failed(exc.output or str(exc))
            return {}, None
        self.build_ok()
        return {c.import_path: b for c, b in zip(compiling, binaries, strict=True)}, go_seconds

    def what_stays(self) -> str:
        """What the user still has after a failed build, reload or graph load."""
        if any(d.container() for c in self.commands for d in c.deliveries):
            return "the running containers keep the last good build"
        if any(c.image is not None for c in self.commands):
            return "the last good images stay in the daemon"
        return "nothing has been built yet"

    def _release(self, command: WatchedCommand, compiled: Binary | None, compile_seconds: float | None,
                 git: GitHead | None, go_seconds: float | None = None) -> None:
        """Image one command, publish it (if it changed) and bring it to its workloads; report the round.

        A binary-only change is begun first (a swap serves before the binary layer is even made: ~100 ms
        for a 90 MB binary); the image follows, off the path to serving. The kodata is read once, before
        anything is delivered: an edit that lands after that is the next round's (its event is queued)."""
        plan = command.plan
        started = time.monotonic()
        clock_start = started - (compile_seconds or 0)  # the whole compile stage, digests included
        snapshot = self.builder.snapshot(plan, git)
        command.read(snapshot)
        in_place = self._in_place(command, compiled, snapshot)
        pending: list[Pending] = []
        if in_place is not None:
            pending = [d.begin(in_place) for d in command.deliveries if d.wants(in_place)]
        swapped_at = time.monotonic()
        for begun in pending:
            if isinstance(begun, Done):  # serves already: said now, not after the image load
                self.ui.served(plan.name, begun.delivered, swapped_at - clock_start)
        top = self.builder.binary_layer(plan, compiled) if compiled else command.binary_layer
        assert top is not None
        image = self.builder.image(snapshot, top)
        image_seconds = time.monotonic() - swapped_at
        first = command.image is None
        changed = command.image is None or image.config_digest != command.image.config_digest
        if in_place is None:
            release = Release(self.run_ref(plan), image, changed, None)
            wanting = [d for d in command.deliveries if d.wants(release)]
            if not changed and not wanting:
                self.ui.report(CommandReport(plan.name, "unchanged", time.monotonic() - clock_start, go_seconds,
                                             image_seconds))
                return
            pending = [d.begin(release) for d in wanting]  # a recreate stops the old container during the load
        published = self._send(command, image, compiled, snapshot, pending) if changed else None
        delivered = tuple(p.complete(published) for p in pending)
        only_swaps = bool(delivered) and all(d.how == "swapped" for d in delivered)
        serving = (swapped_at if only_swaps else time.monotonic()) - clock_start
        self.ui.report(CommandReport(plan.name, "built" if first else "rebuilt", serving, go_seconds, image_seconds,
                                     published, delivered))
        for done in delivered:
            if done.note:
                self.ui.warn(done.note)
            if done.debugger:
                self.ui.debugger_listening(done.service, done.debugger)
            if done.restarted is not None:
                self.ui.debugger_restarted(done.service, done.restarted)
        for done in delivered:
            self.on_delivered(done)

    def _in_place(self, command: WatchedCommand, compiled: Binary | None, snapshot: Snapshot) -> Release | None:
        """The release of a change that can reach running containers in place, begun before its image is
        made: a new binary, new or changed kodata files (none removed), or both, with the base and config as
        published last. None for anything else (a recreate)."""
        image, last_binary = command.image, command.binary_layer
        if image is None or last_binary is None:
            return None
        binary = compiled.path if compiled is not None and compiled.digest != command.binary_digest else None
        last_kodata = image.layers[-2]
        kodata_changed = snapshot.kodata.diff_id != last_kodata.diff_id
        if binary is None and not kodata_changed:
            return None
        as_published = dataclasses.replace(snapshot, kodata=last_kodata)
        if self.builder.image(as_published, last_binary).config_digest != image.config_digest:
            return None  # the base or the image config changed too
        patch = None
        if kodata_changed:
            changed, removed = snapshot.kodata_index.changes_since(command.kodata_index)
            if removed or not changed:  # a file taken away, or the layer differs for another reason
                return None
            if snapshot.kodata_index.size_of(changed) > KODATA_IN_PLACE_MAX_BYTES:
                return None  # the image load carries it anyway: sent twice, a big file costs more in place
            patch = kodata_patch(snapshot.kodata, changed, self.scratch / f"kodata-{command.plan.command.app_name}.tar")
        return Release(self.run_ref(command.plan), None, True, binary, patch)

    def _send(self, command: WatchedCommand, image: Image, compiled: Binary | None, snapshot: Snapshot,
              pending: list[Pending]) -> Published:
        try:
            published = self.builder.publish(command.plan, image)
        except BaseException:
            for waiting in pending:
                restored = waiting.abort()
                if restored is not None:
                    self.on_delivered(restored)  # the old container serves again: follow its logs again
            raise
        command.published(image, compiled.digest if compiled is not None else None, snapshot.kodata_index)
        return published

    def close(self) -> None:
        self._git.shutdown(wait=False)
        if self.direct is not None:
            self.direct.close()


def _head(heads: Future[dict[Path, GitHead | None]], command: WatchedCommand) -> GitHead | None:
    return heads.result().get(command.plan.command.module_dir)
