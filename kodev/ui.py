"""The one place output is written. Progress and timings go to stderr; stdout holds results only."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

from kodev.errors import CompileError, KodevError
from kodev.report import CommandReport

# How a delivery is named in a report line: the word the user knows from docker.
_DELIVERY_WORDS = {"recreated": "restart", "started": "restart", "swapped": "swap"}

# Per-service log prefix colors, in the order docker compose cycles through them.
SERVICE_COLORS = ("cyan", "yellow", "green", "magenta", "blue", "bright_cyan", "bright_yellow",
                  "bright_green", "bright_magenta", "bright_blue")


def enable_debug_log() -> None:
    """kodev's debug channel: what it tolerated and why (a refused stop, a log stream that broke), on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    logger = logging.getLogger("kodev")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"


class UI:
    """Rich, calm output: one line per stage with its time; errors that say what to do."""

    def __init__(self, debug: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.debug = debug
        self.err = Console(file=stderr or sys.stderr, highlight=False, soft_wrap=True)
        self._stdout = stdout or sys.stdout
        self.out = Console(file=self._stdout, highlight=False, soft_wrap=True)
        self.width = 10  # of the subject column: the longest command name in play, so lines stay aligned

    def align(self, names: list[str]) -> None:
        """Size the subject column for these names (commands, services) so result lines line up."""
        self.width = max([10, *(len(name) for name in names)])

    def result(self, line: str) -> None:
        """A result for scripts (an image reference): stdout, plain, one per line."""
        print(line, file=self._stdout, flush=True)

    def stage(self, subject: str, what: str, seconds: float, detail: str = "") -> None:
        line = Text("  ")
        line.append(f"{subject:<{self.width}}", style="bold")
        line.append(f" {what} ")
        line.append(f"{seconds:.2f}s", style="green")
        if detail:
            line.append(f"  {detail}", style="dim")
        self.err.print(line)

    def report(self, report: CommandReport) -> None:
        """One line for a command's build: what happened, the time to serving, then where it went."""
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
            parts.append(f"load {report.published.seconds:.2f}s" + (" after" if swapped else ""))
        if not swapped:
            parts += delivery
        verb = "built in" if report.outcome == "built" else "rebuilt in"
        self.stage(report.name, verb, report.total, f"({', '.join(parts)})" + (f" · {sent}" if sent else ""))

    def info(self, message: str) -> None:
        self.err.print(Text(message, style="dim"))

    def note(self, message: str) -> None:
        self.err.print(Text(message))

    def warn(self, message: str) -> None:
        self.err.print(Text("warning: ", style="bold yellow") + Text(message))

    def error(self, exc: KodevError) -> None:
        self.err.print(Text("error: ", style="bold red") + Text(str(exc)))
        if isinstance(exc, CompileError) and exc.output:
            # The compiler's own words, unstyled, exactly as it printed them.
            self.err.file.write(exc.output if exc.output.endswith("\n") else exc.output + "\n")
            self.err.file.flush()

    def service_line(self, service: str, color: str, width: int, line: str) -> None:
        """A service's log line, prefixed with its name in its color (as docker compose does), on stdout."""
        prefix = Text(f"{service:<{width}} | ", style=color)
        self.out.print(prefix + Text(line))

    def raw(self, stream: str, line: str) -> None:
        """A container's own output line, unprefixed, to our stdout or stderr as the container wrote it."""
        target = self._stdout if stream == "stdout" else self.err.file
        target.write(line + "\n")
        target.flush()
