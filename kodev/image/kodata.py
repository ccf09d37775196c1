"""The kodata layer: a command's `kodata/` tree at `/var/run/ko`, as ko lays it out.

Symlinks are dereferenced (the image gets the target's content) when the target stays inside the module
root or the enclosing git worktree; a link that escapes, dangles or loops is an error naming it.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kodev.errors import ImageError
from kodev.image.layers import Layer, LayerWriter, cache_key, cached_layer, remember_layer

KODATA_DIR = "kodata"
KODATA_PATH = "/var/run/ko"
_MODE = 0o555  # every kodata file and directory, as ko does: readable and executable, never writable


@dataclass(frozen=True)
class KodataEntry:
    """One entry of the layer: `name` relative to /var/run/ko; `source` is None for a directory."""

    name: str
    source: Path | None


def _resolve_link(link: Path, allowed_root: Path) -> Path:
    try:
        target = link.resolve(strict=True)
    except (RuntimeError, OSError) as exc:
        looping = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40  # ELOOP
        if looping:
            raise ImageError(f"kodata symlink {link} is part of a symlink loop. Point it at a real file "
                             "or directory.") from None
        raise ImageError(f"kodata symlink {link} points to {os.readlink(link)!r}, which does not exist. "
                         "Fix or remove the link.") from None
    if not target.is_relative_to(allowed_root):
        raise ImageError(f"kodata symlink {link} points to {target}, outside {allowed_root}. kodev only "
                         "follows links that stay inside the module (or its git worktree), so that an "
                         "image never picks up files from elsewhere on this machine; copy the file in "
                         "instead.")
    return target


def walk(kodata: Path, allowed_root: Path, on_link: Callable[[Path], None] | None = None
         ) -> Iterator[KodataEntry]:
    """Entries of the tree under `kodata`, depth first, names sorted, symlinks dereferenced.

    `on_link` is called with the resolved target of every symlink followed (the watcher watches those).
    """
    allowed_root = allowed_root.resolve()
    root = kodata
    if kodata.is_symlink():
        root = _resolve_link(kodata, allowed_root)
        if on_link:
            on_link(root)
    if not root.is_dir():
        raise ImageError(f"{kodata} is not a directory. kodev puts a command's kodata/ directory at "
                         f"{KODATA_PATH}; rename the file or make kodata a directory.")
    yield from _walk_dir(root, "", allowed_root, frozenset({root.resolve()}), on_link)


def _walk_dir(directory: Path, prefix: str, allowed_root: Path, active: frozenset[Path],
              on_link: Callable[[Path], None] | None) -> Iterator[KodataEntry]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ImageError(f"cannot read kodata directory {directory}: {exc.strerror}. Fix its permissions.") from None
    for name in names:
        path = directory / name
        rel = f"{prefix}{name}"
        target = path
        if path.is_symlink():
            target = _resolve_link(path, allowed_root)
            if on_link:
                on_link(target)
        if target.is_dir():
            real = target.resolve()
            if real in active:
                raise ImageError(f"kodata symlink {path} points back to {real}, which contains it: a symlink "
                                 "loop. Point it somewhere else.")
            yield KodataEntry(rel, None)
            yield from _walk_dir(target, f"{rel}/", allowed_root, active | {real}, on_link)
        elif target.is_file():
            yield KodataEntry(rel, target)
        else:
            raise ImageError(f"kodata entry {path} is neither a regular file nor a directory; remove it.")


@dataclass(frozen=True)
class KodataIndex:
    """What a kodata layer holds, by name under /var/run/ko: its source's fingerprint (size, mtime, inode,
    ctime) per file, a mark per directory. Two of them tell which files an edit changed (`changes_since`):
    what a running container needs to catch up with a kodata edit without being recreated."""

    entries: tuple[tuple[str, str], ...] = ()
    sizes: tuple[tuple[str, int], ...] = ()  # of each file, as its source was when walked

    def changes_since(self, before: KodataIndex) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(names added or changed, in layer order; names removed)."""
        old, new = dict(before.entries), dict(self.entries)
        return (tuple(name for name, mark in self.entries if old.get(name) != mark),
                tuple(sorted(set(old) - set(new))))

    def size_of(self, names: Iterable[str]) -> int:
        sizes = dict(self.sizes)
        return sum(sizes.get(name, 0) for name in names)


def kodata_layer(kodata: Path | None, allowed_root: Path, mtime: int, parents: bool = False,
                 on_link: Callable[[Path], None] | None = None) -> Layer:
    """The layer for `kodata` (see `kodata_snapshot`)."""
    return kodata_snapshot(kodata, allowed_root, mtime, parents, on_link)[0]


def kodata_snapshot(kodata: Path | None, allowed_root: Path, mtime: int, parents: bool = False,
                    on_link: Callable[[Path], None] | None = None) -> tuple[Layer, KodataIndex]:
    """The layer for `kodata` (None or missing: just the empty /var/run/ko directory), and its index.

    `on_link` gets the target of every symlink followed (see `walk`): one walk gives the layer and the
    paths whose changes change it.

    `parents` adds /var and /var/run (0755) for a base that lacks them: some storage drivers (vfs, btrfs,
    zfs) would otherwise create them 0600, and a nonroot app could not reach its kodata. A base that has
    them keeps its own (on Debian /var/run is a symlink to /run, which an entry here would replace).
    """
    root = KODATA_PATH.lstrip("/")
    entries = list(walk(kodata, allowed_root, on_link)) if kodata is not None and (
        kodata.exists() or kodata.is_symlink()) else []
    # An unchanged tree (same names, same files by size, mtime and inode) is not tarred again.
    fingerprints = [_fingerprint(entry) for entry in entries]
    key = cache_key("kodata", str(mtime), str(parents), *fingerprints)
    index = KodataIndex(tuple((entry.name, mark) for entry, mark in zip(entries, fingerprints, strict=True)),
                        tuple((entry.name, _size(entry.source)) for entry in entries if entry.source is not None))
    created_by = f"kodev: kodata at {KODATA_PATH}"
    found = cached_layer(key, created_by)
    if found is not None:
        return found, index
    with LayerWriter(created_by, mtime) as writer:
        if parents:
            writer.directory("var", 0o755)
            writer.directory("var/run", 0o755)
        writer.directory(root, _MODE)
        for entry in entries:
            name = f"{root}/{entry.name}"
            if entry.source is None:
                writer.directory(name, _MODE)
            else:
                writer.file(name, entry.source, _MODE)
        layer = writer.finish()
    remember_layer(key, layer)
    return layer, index


def kodata_patch(layer: Layer, names: Iterable[str], target: Path) -> Path:
    """An archive at `target` of the entries `names` (under /var/run/ko) of the kodata `layer`, as the layer
    has them (content, mode, owner), to extract at / in a running container. Nothing above /var/run/ko is
    in it: on Debian /var/run is a symlink, which extracting a directory entry there would replace."""
    wanted = {f"{KODATA_PATH.lstrip('/')}/{name}" for name in names}
    with tarfile.open(layer.path, "r:") as source, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as patch:
        for member in source:
            if member.name.rstrip("/") in wanted:
                patch.addfile(member, source.extractfile(member) if member.isfile() else None)
    return target


def _fingerprint(entry: KodataEntry) -> str:
    if entry.source is None:
        return f"d:{entry.name}"
    try:
        info = entry.source.stat()
    except OSError:
        return f"f:{entry.name}:gone"  # the build itself reports the unreadable file
    return f"f:{entry.name}:{entry.source}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}:{info.st_ctime_ns}"


def _size(source: Path) -> int:
    try:
        return source.stat().st_size
    except OSError:
        return 0


def sources(kodata: Path, allowed_root: Path) -> frozenset[Path]:
    """The paths a change under which changes the kodata layer: the directory and every link target."""
    found = {kodata.absolute()}
    if kodata.exists() or kodata.is_symlink():
        # A broken tree still counts as kodata: fixing it must trigger a rebuild.
        with contextlib.suppress(ImageError):
            for _ in walk(kodata, allowed_root, found.add):
                pass
    return frozenset(found)
