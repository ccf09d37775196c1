"""What a Go source file says about how it is built, read by a quick scan (no parser): its imports, and the
lines besides its code that `go build` acts on (build constraints, the package clause, directives)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_IMPORT_BLOCK = re.compile(r"^import\s*\((.*?)^\)", re.M | re.S)
_IMPORT_SINGLE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.M)
_IMPORT_SPEC = re.compile(r'^\s*(?:[\w.]+\s+)?"([^"]+)"', re.M)
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
# Lines go build reads besides the code: constraints, the package clause, //go:embed, //go:debug (they set
# the binary's GODEBUG defaults) and cgo's preamble directives.
_BUILD_LINES = re.compile(r"^(?://go:build.*|// \+build.*|package\s+\w+|\s*//go:(?:embed|debug)\b.*|\s*#cgo\b.*)$",
                          re.M)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def imports_of(path: Path) -> set[str]:
    """The import paths a Go file names (a quick scan, enough to notice a new import)."""
    text = _read(path)
    return set() if text is None else _imports(text)


def _imports(text: str) -> set[str]:
    text = _COMMENTS.sub("", text)
    found = set(_IMPORT_SINGLE.findall(text))
    for block in _IMPORT_BLOCK.findall(text):
        found.update(_IMPORT_SPEC.findall(block))
    return found


@dataclass(frozen=True)
class BuildFacts:
    """What of a Go file decides how `go build` builds its package, not what the package's code is: an edit
    that keeps these the same is compiled by the same compiler command and linked by the same link."""

    imports: frozenset[str]
    lines: tuple[str, ...]  # constraints, package clause, //go:embed and //go:debug directives, #cgo lines


def build_facts(path: Path) -> BuildFacts | None:
    """The file's `BuildFacts`, or None when it cannot be read."""
    text = _read(path)
    if text is None:
        return None
    return BuildFacts(frozenset(_imports(text)), tuple(line.strip() for line in _BUILD_LINES.findall(text)))
