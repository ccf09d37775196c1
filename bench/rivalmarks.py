"""Reading the rivals' output: the lines ko, Skaffold and air print at known points of a rebuild, turned into
a breakdown of where their time went (each line timed as the benchmark read it), and ko's image reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.measure import BenchError, Line

# --- output parsers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mark:
    """A line a tool prints at a known point: `step` names the time from the previous point to this line."""

    step: str
    pattern: str


@dataclass(frozen=True)
class Marks:
    points: tuple[Mark, ...]
    tail: str  # the time from the last point to the end


# ko logs "Using base" once the base is resolved, "Building" before `go build`, "Loading" once the image is
# assembled, "Loaded" after the daemon's load; the tags are added after.
KO_MARKS = Marks((Mark("start + base", r"Using base \S+ for "), Mark("config", r"Building \S+ for "),
                  Mark("go build + layers", r"Loading \S+"), Mark("load", r"Loaded \S+")), "tag")
# skaffold dev's own lines (stdout) around the ko library's (stderr, as above).
SKAFFOLD_MARKS = Marks((Mark("watcher", r"^Generating tags\.\.\."), Mark("tags", r"^Checking cache\.\.\."),
                        Mark("cache check", r"^Starting build\.\.\."), *KO_MARKS.points,
                        Mark("tag", r"^Build \[\S+\] succeeded"), Mark("after build", r"^Starting deploy\.\.\.")),
                       "deploy -> serving")
SKAFFOLD_WATCHING = r"^Watching for changes\.\.\."
AIR_MARKS = Marks((Mark("watcher", r"has changed$"), Mark("delay", r"building\.\.\."),
                   Mark("go build", r"running\.\.\.")), "restart -> serving")


def stages(lines: list[Line], marks: Marks, started: float, ended: float) -> dict[str, float]:
    """Seconds per step, from the first line matching each point (the time it was read); a point never
    printed leaves its time to the next one found."""
    result: dict[str, float] = {}
    previous = started
    for mark in marks.points:
        regex = re.compile(mark.pattern)
        hit = next((line.at for line in lines if regex.search(strip_ansi(line.text))), None)
        if hit is not None and hit >= previous:
            result[mark.step] = hit - previous
            previous = hit
    result[marks.tail] = max(ended - previous, 0.0)
    return result


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def ko_reference(stdout: str) -> str:
    """The image `ko build` published: the last line of its stdout (ko logs everything else on stderr)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or not re.fullmatch(r"ko\.local/\S+[:@]\S+", lines[-1]):
        raise BenchError(f"ko build printed no ko.local image reference: {stdout[-400:]!r}")
    return lines[-1]
