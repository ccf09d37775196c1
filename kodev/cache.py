"""Where kodev keeps what it can reuse between runs: layers, base images, build scratch space.

`CacheSettings` is what the environment says about the cache (KODEV_CACHE_DIR, XDG_CACHE_HOME,
KODEV_CACHE_MAX_MB), read in one place. The session reads it once; `subdir` still asks the environment at
each call, because the stages that write the cache (layers, bases, the swap directories) are not handed a
`CacheSettings` yet, and a test points KODEV_CACHE_DIR at a directory of its own before calling them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BUDGET_MB = 2048


@dataclass(frozen=True)
class CacheSettings:
    """The cache's directory and the size its layer files are pruned back under after builds."""

    root: Path
    layer_budget: int  # bytes

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CacheSettings:
        """`KODEV_CACHE_DIR`, else `$XDG_CACHE_HOME/kodev`, else `~/.cache/kodev`; `KODEV_CACHE_MAX_MB`
        (default 2048: a value that is not a whole number counts as unset)."""
        explicit = env.get("KODEV_CACHE_DIR")
        if explicit:
            root = Path(explicit)
        else:
            xdg = env.get("XDG_CACHE_HOME")
            root = (Path(xdg) if xdg else Path.home() / ".cache") / "kodev"
        raw = env.get("KODEV_CACHE_MAX_MB", "")
        return cls(root, (int(raw) if raw.isdigit() else DEFAULT_BUDGET_MB) * 1024 * 1024)

    def subdir(self, name: str) -> Path:
        """The directory `name` in the cache, created (with the cache) on first use."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def current() -> CacheSettings:
    """The cache as this process's environment names it now."""
    return CacheSettings.from_env(os.environ)


def cache_dir() -> Path:
    """The cache's directory (see `CacheSettings.from_env`); created on first use."""
    path = current().root
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str) -> Path:
    return current().subdir(name)


def prune_layers(keep: set[Path], budget: int | None = None) -> int:
    """Delete the least recently used layer files until they fit `budget` bytes (None: the environment's
    KODEV_CACHE_MAX_MB now); never one in `keep`.

    Recency is the file's mtime, refreshed whenever a cached layer is reused. Returns bytes freed.
    """
    settings = current()
    limit = settings.layer_budget if budget is None else budget
    entries = []
    for path in settings.subdir("layers").glob("*.tar"):
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
