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


DEFAULT_BUDGET_MB = 2048


def budget_bytes() -> int:
    """`KODEV_CACHE_MAX_MB` (default 2048): the layer cache is pruned back under this size after builds."""
    raw = os.environ.get("KODEV_CACHE_MAX_MB", "")
    return (int(raw) if raw.isdigit() else DEFAULT_BUDGET_MB) * 1024 * 1024


def prune_layers(keep: set[Path], budget: int | None = None) -> int:
    """Delete the least recently used layer files until the cache fits `budget`; never one in `keep`.

    Recency is the file's mtime, refreshed whenever a cached layer is reused. Returns bytes freed.
    """
    limit = budget_bytes() if budget is None else budget
    entries = []
    for path in subdir("layers").glob("*.tar"):
        try:
            info = path.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    freed = 0
    for _, size, path in sorted(entries):
        if total - freed <= limit:
            break
        if path in keep:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        freed += size
    return freed
