"""The benchmark's own pieces that need nothing: the module generator's shape, reading kodev's events, stats.

That a generated module builds with the real `go`, and one repetition of scenario 1 end to end, are in
tests/integration/test_bench_smoke.py.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench.contenders import event_pattern, parse_result
from bench.generate import SHARED_FILE, count_shape, generate, set_shared_tag
from bench.measure import Series, pair_differences, pair_ratios
from kodev.deliver import Delivered
from kodev.jsonui import JsonUI, check_event
from kodev.publish import Published
from kodev.report import CommandReport


@pytest.mark.parametrize(("commands", "packages", "files"), [(5, 20, None), (20, 200, None), (4, 30, 101)])
def test_generated_module_has_the_promised_shape(tmp_path: Path, commands: int, packages: int,
                                                 files: int | None) -> None:
    shape = generate(tmp_path / "m", commands=commands, packages=packages, files=files)
    expected_files = files if files is not None else commands + 2 * packages
    assert (len(shape.commands), shape.packages, shape.files) == (commands, packages, expected_files)
    assert count_shape(shape.root) == (commands, packages, expected_files)
    assert (shape.root / "go.mod").read_text().startswith("module example.com/gen\n")
    assert shape.command_dirs[0] == "./cmd/c00" and shape.commands[0] == "example.com/gen/cmd/c00"


def test_only_the_first_commands_import_the_shared_package(tmp_path: Path) -> None:
    shape = generate(tmp_path / "m", commands=6, packages=30, shared_by=2)
    importers = sorted(p.parent.name for p in (shape.root / "cmd").glob("*/main.go")
                       if '"example.com/gen/internal/shared"' in p.read_text())
    assert importers == ["c00", "c01"]
    assert [c.rsplit("/", 1)[-1] for c in shape.affected] == ["c00", "c01"]
    # Every library package but `shared` is reachable from every command's group or from all (common).
    for go_file in (shape.root / "internal").rglob("*.go"):
        for imported in re.findall(r'"example.com/gen/([^"]+)"', go_file.read_text()):
            assert (shape.root / imported).is_dir(), imported


def test_standard_library_only(tmp_path: Path) -> None:
    shape = generate(tmp_path / "m", commands=3, packages=10)
    for go_file in shape.root.rglob("*.go"):
        for imported in re.findall(r'^\s*(?:\w+\s+)?"([^"]+)"$', go_file.read_text(), re.M):
            assert imported.startswith("example.com/gen/") or "." not in imported.split("/")[0], imported


def test_shared_tag_edit_changes_one_line(tmp_path: Path) -> None:
    shape = generate(tmp_path / "m", commands=3, packages=10)
    before = (shape.root / SHARED_FILE).read_text().splitlines()
    set_shared_tag(shape.root, "bench-7")
    after = (shape.root / SHARED_FILE).read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [('const Tag = "v0"', 'const Tag = "bench-7"')]


def test_generate_refuses_impossible_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "a", commands=10, packages=5)
    with pytest.raises(ValueError):
        generate(tmp_path / "b", commands=2, packages=10, files=5)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    with pytest.raises(ValueError):
        generate(tmp_path / "c", commands=2, packages=10)


def _result(**fields: Any) -> dict[str, Any]:
    """A `command.result` event as kodev's JsonUI writes it."""
    out = io.StringIO()
    JsonUI("watch", stdout=out).report(CommandReport(**fields))
    event: dict[str, Any] = json.loads(out.getvalue().splitlines()[-1])
    check_event(event)
    return event


def test_parse_result_reads_kodevs_command_result_event() -> None:
    published = Published("kodev.local/server:latest", "sha256:00", 9_900_000, 0.11)
    rebuilt = _result(name="server", outcome="rebuilt", total=0.52, go=0.29, image=0.0, published=published,
                      delivered=(Delivered("api", "recreated", 0.12, "c0ffee"),))
    assert parse_result(rebuilt) == {"total": 0.52, "go": 0.29, "image": 0.0, "load": 0.11, "restart": 0.12,
                                     "sent_mb": 9.9}
    unchanged = _result(name="c01", outcome="unchanged", total=0.31, go=0.29, image=0.0)
    assert parse_result(unchanged) == {"total": 0.31, "go": 0.29, "image": 0.0}
    built = _result(name="c02", outcome="built", total=1.2, go=1.0, image=0.1,
                    published=Published("kodev.local/c02:latest", "sha256:01", 512_000, 0.1),
                    delivered=(Delivered("", "kept", 0.0),))
    assert parse_result(built)["sent_mb"] == pytest.approx(0.512) and "restart" not in parse_result(built)
    assert parse_result({"event": "watching"}) == {}


def test_event_pattern_matches_kodevs_lines_only() -> None:
    line = json.dumps(_result(name="c01", outcome="unchanged", total=0.31, go=0.29, image=0.0))
    assert re.search(event_pattern("command.result"), line)
    assert not re.search(event_pattern("command.result"), line.replace("command.result", "changes"))
    assert not re.search(event_pattern("command.result"), "  c01        unchanged 0.31s")


def test_series_statistics_and_pairs() -> None:
    a, b = Series("a", [1.0, 3.0, 2.0]), Series("b", [2.0, 4.0, 4.0])
    assert (a.median, a.min, a.max) == (2.0, 1.0, 3.0)
    assert pair_ratios(a, b) == [0.5, 0.75, 0.5]
    assert pair_differences(b, a) == [1.0, 1.0, 2.0]
    assert Series("empty").median != Series("empty").median  # NaN: nothing measured
