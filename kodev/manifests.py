"""`kodev resolve -f k8s/ --push REPO`: Kubernetes (or any) YAML whose `ko://` references become the
digest references of images kodev built and pushed, as `ko resolve` prints them.

The YAML is checked (PyYAML) but never re-written: each `ko://IMPORT/PATH` scalar is replaced in the text
itself, so documents, comments, quoting and key order come out exactly as they went in, but for those
image fields. Only `ko://` references are built (ko's `--strict`): a bare import path is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev.errors import ConfigError

# A ko:// reference as a whole YAML scalar: plain, or in single or double quotes.
_REFERENCE = re.compile(r"""(?<![\w/.-])(?P<quote>["']?)ko://(?P<path>[A-Za-z0-9][A-Za-z0-9._~/-]*)(?P=quote)""")
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Manifest:
    """One YAML file: its text and the `ko://` references in it (import path -> the first line naming it)."""

    path: Path
    text: str
    references: dict[str, int]


def collect(paths: Sequence[Path]) -> list[Manifest]:
    """The YAML files `paths` name (a directory: every .yaml/.yml below it, in order), each checked."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: no such file or directory (kodev resolve -f). Give a YAML file or a "
                              "directory of them.")
    if not files:
        raise ConfigError(f"no .yaml or .yml file in {', '.join(str(p) for p in paths)} (kodev resolve -f).")
    return [_read(path) for path in files]


def _read(path: Path) -> Manifest:
    import yaml

    try:
        text = path.read_text()
        list(yaml.safe_load_all(text))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (kodev resolve reads YAML).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}). Fix it and run again.") from None
    references: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for found in _REFERENCE.finditer(line):
            references.setdefault(found["path"].rstrip("/"), number)
    return Manifest(path, text, references)


def origins(manifests: Sequence[Manifest]) -> dict[str, str]:
    """Each ko:// import path -> where it is first named (FILE:LINE), for errors."""
    found: dict[str, str] = {}
    for manifest in manifests:
        for path, line in manifest.references.items():
            found.setdefault(f"ko://{path}", f"{manifest.path}:{line}")
    return found


def resolved(manifest: Manifest, refs: dict[str, str]) -> str:
    """The manifest's text with each `ko://PATH` replaced by `refs[PATH]` (its quotes kept)."""

    def replace(found: re.Match[str]) -> str:
        path = found["path"].rstrip("/")
        if path not in refs:  # a reference on a comment line: left as it was
            return found[0]
        return f"{found['quote']}{refs[path]}{found['quote']}"

    lines = manifest.text.splitlines(keepends=True)
    return "".join(line if line.lstrip().startswith("#") else _REFERENCE.sub(replace, line) for line in lines)
