"""Where kodev keeps what it can reuse between runs: layers, base images, build scratch space."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`KODEV_CACHE_DIR`, else `$XDG_CACHE_HOME/kodev`, else `~/.cache/kodev`; created on first use."""
    explicit = os.environ.get("KODEV_CACHE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "kodev"
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
