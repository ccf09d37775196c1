"""A command's report line (kodev/report.py rendered by UI.report): its shape, its alignment, and that the
human line's reader below (what the benchmark parsed before it read --json events) reads it."""

from __future__ import annotations

import io
import re

import pytest

from kodev.deliver import Delivered
from kodev.publish import Published
from kodev.report import CommandReport
from kodev.ui import UI

PUBLISHED = Published("kodev.local/server:latest", "sha256:" + "ab" * 32, 1_234_567, 0.2)


# The per-command line, read back: its shape is what users (and their scripts) rely on.
STAGE = re.compile(r"^\s+(?P<name>\S+)\s+(?P<what>built in|rebuilt in|unchanged)\s+(?P<total>[\d.]+)s\s+"
                   r"\((?P<detail>[^)]*)\)(?:.*·\s*(?P<sent>[\d.]+) (?P<unit>B|kB|MB|GB) sent)?")
_UNITS = {"B": 1e-6, "kB": 1e-3, "MB": 1.0, "GB": 1e3}


def parse_stage(text: str) -> dict[str, float]:
    """kodev watch's per-command line -> {"total", "go", "image", "load", "restart", "sent_mb"}."""
    match = STAGE.search(text)
    if not match:
        return {}
    found = {"total": float(match["total"])}
    for part, value in re.findall(r"(\w+) ([\d.]+)s", match["detail"]):
        found[part] = float(value)
    if match["sent"]:
        found["sent_mb"] = float(match["sent"]) * _UNITS[match["unit"]]
    return found


def render(*reports: CommandReport, align: list[str] | None = None) -> list[str]:
    err = io.StringIO()
    ui = UI(stdout=io.StringIO(), stderr=err)
    if align is not None:
        ui.align(align)
    for report in reports:
        ui.report(report)
    return err.getvalue().splitlines()


def rebuilt(name: str = "server", *delivered: Delivered) -> CommandReport:
    return CommandReport(name, "rebuilt", 1.234, 0.5, 0.1, PUBLISHED,
                         delivered or (Delivered("web", "recreated", 0.3, "c1"),))


def test_rebuilt_line_shape_parsed_by_the_benchmark() -> None:
    [line] = render(rebuilt())
    assert line == "  server     rebuilt in 1.23s  (go 0.50s, image 0.10s, load 0.20s, restart 0.30s) · 1.2 MB sent"
    assert parse_stage(line) == {"total": 1.23, "go": 0.5, "image": 0.1, "load": 0.2, "restart": 0.3,
                                 "sent_mb": pytest.approx(1.2)}
    match = STAGE.search(line)
    assert match is not None and match["name"] == "server" and match["what"] == "rebuilt in"


def test_restart_seconds_of_several_services_add_up_and_swaps_are_named() -> None:
    [line] = render(rebuilt("server", Delivered("a", "recreated", 0.25, "c1"), Delivered("b", "started", 0.5, "c2"),
                            Delivered("c", "swapped", 0.125, None)))
    parsed = parse_stage(line)
    assert parsed["restart"] == 0.75 and parsed["swap"] == pytest.approx(0.12, abs=0.01)


def test_first_build_of_an_image_only_command() -> None:
    [line] = render(CommandReport("hello", "built", 0.9, 0.5, 0.1, PUBLISHED, (Delivered("", "kept", 0.0),)))
    assert "built in 0.90s" in line and "restart" not in line
    assert parse_stage(line) == {"total": 0.9, "go": 0.5, "image": 0.1, "load": 0.2, "sent_mb": pytest.approx(1.2)}


def test_reimaged_without_go() -> None:
    [line] = render(CommandReport("server", "rebuilt", 0.4, None, 0.1, PUBLISHED,
                                  (Delivered("web", "recreated", 0.3, "c1"),)))
    assert "go " not in line
    assert parse_stage(line)["image"] == 0.1


def test_unchanged_line() -> None:
    [line] = render(CommandReport("server", "unchanged", 0.6, 0.5, 0.1))
    assert "unchanged 0.60s" in line and "nothing restarted" in line and "sent" not in line
    assert parse_stage(line) == {"total": 0.6, "go": 0.5, "image": 0.1}


def test_image_line_of_kodev_build() -> None:
    [line] = render(CommandReport("server", "image", 0.3, None, 0.1, PUBLISHED))
    assert "image 0.10s" in line and "load 0.20s (1.2 MB sent)" in line
    assert PUBLISHED.ref in line and PUBLISHED.image_id[:19] in line
    assert STAGE.search(line) is None  # not a loop line: the benchmark does not count it


def test_long_names_are_aligned() -> None:
    long = "a-command-with-a-long-name"
    lines = render(rebuilt(long), rebuilt("x"), CommandReport("mid-name", "unchanged", 0.6, 0.5, 0.1),
                   align=[long, "x", "mid-name"])
    columns = {line.index(" rebuilt in ") if " rebuilt in " in line else line.index(" unchanged ") for line in lines}
    assert columns == {2 + len(long)}
    assert [STAGE.search(line)["name"] for line in lines] == [long, "x", "mid-name"]  # type: ignore[index]


def test_without_align_the_column_is_ten_wide_and_longer_names_still_parse() -> None:
    lines = render(rebuilt("x"), rebuilt("a-command-with-a-long-name"))
    assert lines[0].index(" rebuilt in ") == 12
    assert [parse_stage(line)["total"] for line in lines] == [1.23, 1.23]
