"""The one place output is written. Progress and timings go to stderr; stdout holds results only.

`UI` speaks to people: calm lines, and a live status line while work runs when stderr is a terminal.
Its methods are semantic (`graph_loaded`, `changes`, `building`, `report`, `daemon_lost`, ...), so that
`kodev.jsonui.JsonUI` can say the same things as JSON events instead (`--json`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.text import Text

from kodev.errors import CompileError, KodevError
from kodev.report import BuildProgress, CommandReport
from kodev.status import StatusLine, wants_status
from kodev.ui_news import LoopNews

if TYPE_CHECKING:
    from kodev.affected import FileChange
    from kodev.deliver import Delivered
    from kodev.gomod import ModuleGraph

# How a delivery is named in a report line: the word the user knows from docker.
_DELIVERY_WORDS = {"recreated": "restart", "started": "restart", "swapped": "swap", "rolled-out": "rollout"}

# Per-service log prefix colors, in the order docker compose cycles through them.
SERVICE_COLORS = ("cyan", "yellow", "green", "magenta", "blue", "bright_cyan", "bright_yellow",
                  "bright_green", "bright_magenta", "bright_blue")


class _DebugHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Debug lines on stderr; while a UI with a status line runs, through it (`send_to`): above its status
    line, under its lock."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.sink: Callable[[str], None] | None = None

    def send_to(self, sink: Callable[[str], None]) -> None:
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if self.sink is None:
            super().emit(record)
            return
        try:
            self.sink(self.format(record))
        except Exception:
            self.handleError(record)


def enable_debug_log() -> None:
    """kodev's debug channel: what it tolerated and why (a refused stop, a log stream that broke), on stderr."""
    logger = logging.getLogger("kodev")
    if any(isinstance(h, _DebugHandler) for h in logger.handlers):
        return
    handler = _DebugHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _debug_lines_to(sink: Callable[[str], None]) -> None:
    """Route the debug channel (if --debug turned it on) through `sink`: the newest UI with a status line."""
    for handler in logging.getLogger("kodev").handlers:
        if isinstance(handler, _DebugHandler):
            handler.send_to(sink)


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class UI(LoopNews):
    """Rich, calm output: one line per stage with its time; errors that say what to do.

    `status`: show the live status line (default: when stderr is a terminal). Every write takes one lock
    and goes above the status line, so result lines (stderr) and service logs (stdout) never garble it.
    """

    def __init__(self, debug: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None,
                 status: bool | None = None) -> None:
        self.debug = debug
        err_file = stderr or sys.stderr
        self.err = Console(file=err_file, highlight=False, soft_wrap=True)
        self._stdout = stdout or sys.stdout
        self.out = Console(file=self._stdout, highlight=False, soft_wrap=True)
        self.width = 10  # of the subject column: the longest command name in play, so lines stay aligned
        self.estimate: int | None = None  # the most packages a build compiles (the graph's size), if known
        self._lock = threading.RLock()  # log threads write too
        self._status = StatusLine(err_file, self._lock) if (wants_status(err_file) if status is None else status) \
            else None
        self._pending: list[str] = []  # commands built this round whose report is still to come
        self._progress = [0]  # packages compiled by the running `go build` (the status line reads it)
        if self._status is not None:
            _debug_lines_to(self.debug_line)  # the debug channel must not garble the status line either

    def debug_line(self, text: str) -> None:
        with self._writing():
            self.err.print(Text(text, style="dim"))

    def align(self, names: Sequence[str]) -> None:
        """Size the subject column for these names (commands, services) so result lines line up."""
        self.width = max([10, *(len(name) for name in names)])

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Around every write: one writer at a time, above the status line."""
        with self._lock:
            if self._status is None:
                yield
            else:
                with self._status.above():
                    yield

    def result(self, line: str) -> None:
        """A result for scripts (an image reference): stdout, plain, one per line."""
        with self._writing():
            print(line, file=self._stdout, flush=True)

    def stage(self, subject: str, what: str, seconds: float, detail: str = "") -> None:
        line = Text("  ")
        line.append(f"{subject:<{self.width}}", style="bold")
        line.append(f" {what} ")
        line.append(f"{seconds:.2f}s", style="green")
        if detail:
            line.append(f"  {detail}", style="dim")
        with self._writing():
            self.err.print(line)

    def served(self, name: str, delivered: Delivered, serving_seconds: float) -> None:
        """A workload serves the new build before its round is over (a swap: the image follows). The round's
        result line says it for people; `--json` says it at once."""

    def report(self, report: CommandReport) -> None:
        """One line for a command's build: what happened, the time to serving, then where it went."""
        self._reported(report.name)
        sent = f"{human_bytes(report.published.bytes_sent)} sent" if report.published else ""
        if report.outcome == "image":  # kodev build / kodev run: no loop, so the image is the news
            published = report.published
            assert published is not None
            self.stage(report.name, "image", report.image,
                       f"load {published.seconds:.2f}s ({sent})  {published.ref}  {published.image_id[:19]}")
            return
        parts = [f"go {report.go:.2f}s"] if report.go is not None else []
        parts.append(f"image {report.image:.2f}s")
        if report.outcome == "unchanged":
            self.stage(report.name, "unchanged", report.total,
                       f"({', '.join(parts)}) — same binary and kodata, nothing restarted")
            return
        words = sorted({_DELIVERY_WORDS[d.how] for d in report.delivered if d.how in _DELIVERY_WORDS})
        delivery = [f"{word} {sum(d.seconds for d in report.delivered if _DELIVERY_WORDS.get(d.how) == word):.2f}s"
                    for word in words]
        swapped = "swap" in words
        if swapped:  # served after the swap; the image was loaded after that, off the path to serving
            parts += delivery
        if report.published is not None:
            verb = "push" if report.published.destination == "registry" else "load"  # (kodev watch -k pushes only)
            parts.append(f"{verb} {report.published.seconds:.2f}s" + (" after" if swapped else ""))
        if not swapped:
            parts += delivery
        verb = "built in" if report.outcome == "built" else "rebuilt in"
        self.stage(report.name, verb, report.total, f"({', '.join(parts)})" + (f" · {sent}" if sent else ""))
        for pushed in report.published.elsewhere if report.published else ():
            if pushed.destination == "registry":
                self.stage(report.name, "pushed", pushed.seconds,
                           f"{pushed.ref} ({human_bytes(pushed.bytes_sent)} sent)")

    def info(self, message: str) -> None:
        with self._writing():
            self.err.print(Text(message, style="dim"))

    def note(self, message: str) -> None:
        with self._writing():
            self.err.print(Text(message))

    def warn(self, message: str) -> None:
        with self._writing():
            self.err.print(Text("warning: ", style="bold yellow") + Text(message))

    def error(self, exc: KodevError, fatal: bool = False) -> None:
        """An error, as one paragraph (`fatal`: it ends kodev). The status line of the work it ended goes."""
        self._idle()
        with self._writing():
            self.err.print(Text("error: ", style="bold red") + Text(str(exc)))
            if isinstance(exc, CompileError) and exc.output:
                # The compiler's own words, unstyled, exactly as it printed them.
                self.err.file.write(exc.output if exc.output.endswith("\n") else exc.output + "\n")
                self.err.file.flush()

    def service_line(self, service: str, color: str, width: int, line: str, stream: str = "stdout") -> None:
        """A service's log line, prefixed with its name in its color (as docker compose does), on stdout."""
        prefix = Text(f"{service:<{width}} | ", style=color)
        with self._writing():
            self.out.print(prefix + Text(line))

    def raw(self, stream: str, line: str, service: str = "") -> None:
        """A container's own output line, unprefixed, to our stdout or stderr as the container wrote it."""
        target = self._stdout if stream == "stdout" else self.err.file
        with self._writing():
            target.write(line + "\n")
            target.flush()

    # --- what happens in a loop, said semantically (kodev.jsonui says it as events) ---------------------

    def graph_loaded(self, graph: ModuleGraph, seconds: float) -> None:
        self.estimate = graph.listed or None
        self.info(f"package graph: {len(graph.packages)} packages ({seconds:.2f}s)")

    def changes(self, changes: Sequence[FileChange], root: Path, commands: Sequence[str] = ()) -> None:
        """Files changed; `commands` are the ones they affect (none known yet when the graph failed)."""
        from kodev.events import describe

        self.info(f"changed: {describe(changes, root)}")

    def watching(self, roots: Sequence[Path]) -> None:
        self._idle()
        self.note(f"watching {', '.join(str(r) for r in roots)} — save a file to rebuild; Ctrl-C to stop")

    @contextmanager
    def building(self, commands: Sequence[str]) -> Iterator[BuildProgress]:
        """Around one compile of `commands`: yields the `BuildProgress` the compile tells of each package.

        On a terminal the status line shows the commands, packages compiled so far (of every package in the
        graph, standard library included, when a loop loaded one: the most a cold build compiles) and the
        time; then, until each command's report, that its image is being made and delivered."""
        started = time.monotonic()
        compiled: list[str] = []
        self.width = max(self.width, *(len(name) for name in commands))  # `kodev build` names never aligned
        self._build_started(commands)

        def on_package(import_path: str) -> None:
            compiled.append(import_path)  # a list append: safe without the lock, read by the status thread
            self._build_progress(commands, len(compiled))

        progress = BuildProgress(on_package)
        try:
            yield progress
        except CompileError as exc:
            self._build_failed(commands, time.monotonic() - started, len(compiled), exc)
            raise
        except BaseException:
            self._idle()
            raise
        self._build_finished(commands, time.monotonic() - started, len(compiled), progress.direct)

    def superseded(self, commands: Sequence[str]) -> None:
        """The build of `commands` was given up for newer saves; the next round builds them with those."""
        self.info(f"newer saves came during the build of {', '.join(commands)}: building them too")

    def _build_started(self, commands: Sequence[str]) -> None:
        if self._status is None:
            return
        self._pending = list(commands)
        names = ", ".join(commands)
        total = self.estimate
        progress = self._progress = [0]

        def render(elapsed: float) -> str:
            count = progress[0]
            packages = (f"{count}/~{total} packages" if total else _plural(count, "package")) if count else \
                "checking the build cache"
            return f"go build {names} · {packages} · {elapsed:.1f}s"

        self._status.show(render)

    def _build_progress(self, commands: Sequence[str], packages: int) -> None:
        if self._status is not None:
            self._progress[0] = packages  # drawn on the next tick: a line per package would cost more

    def _build_finished(self, commands: Sequence[str], seconds: float, packages: int, direct: bool) -> None:
        if self._status is None:
            return
        pending = self._pending

        def render(elapsed: float) -> str:
            return f"image, load, deliver {', '.join(pending)} · {elapsed:.1f}s"

        self._status.show(render)

    def _build_failed(self, commands: Sequence[str], seconds: float, packages: int, exc: CompileError) -> None:
        self._idle()  # the error itself is said by whoever handles it

    def _reported(self, name: str) -> None:
        """A command's report is out: the status line stops waiting for it (and goes when none is left)."""
        with self._lock:
            if name in self._pending:
                self._pending.remove(name)
                if not self._pending:
                    self._idle()

    def _idle(self) -> None:
        """Nothing is running any more (done, failed, interrupted): the status line goes."""
        with self._lock:
            self._pending = []
            if self._status is not None:
                self._status.hide()

    def service_exited(self, service: str, code: int, last_lines: Sequence[str]) -> None:
        if code == 0:
            self.info(f"{service} exited with code 0; the next good build starts it again.")
            return
        tail = f" Its last output: {last_lines[-1]!r}." if last_lines else ""
        self.warn(f"{service} exited with code {code}.{tail} The next good build starts it again.")

    def daemon_lost(self, endpoint: str) -> None:
        self._idle()
        self.warn(f"the Docker daemon at {endpoint} is not answering. kodev keeps watching and retries; when it "
                  "is back, everything is rebuilt and restarted.")

    def daemon_back(self) -> None:
        self.note("the Docker daemon is back: rebuilding and restarting")

    def kube_applied(self, context: str, namespace: str, objects: Sequence[str], seconds: float) -> None:
        count = f"{len(objects)} object{'' if len(objects) == 1 else 's'}"
        self.stage("kubernetes", "applied", seconds, f"{count} to {context} (namespace {namespace})")

    def kube_rolled_out(self, objects: Sequence[str], seconds: float) -> None:
        self.stage("kubernetes", "rolled out", seconds, ", ".join(objects) + " ready")

    def config_reloaded(self, path: Path) -> None:
        self.note(f"{path} changed: applying it (services are recreated)")

    def config_rejected(self, path: Path, exc: KodevError) -> None:
        """A changed kodev.toml is broken; `exc` says so and that the last good one stays."""
        self.error(exc)

    def close(self, code: int) -> None:
        """kodev is about to exit with `code`: nothing may be left drawn."""
        self._idle()
