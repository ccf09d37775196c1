"""Reproducible, uncompressed layer tarballs, written once into the layer cache and named by diff ID.

Every entry gets fixed owners, a fixed mtime and an explicit mode, so the same content always gives the
same bytes and therefore the same diff ID, whoever builds it and whenever.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from kodev import cache
from kodev.errors import ImageError

_COPY_CHUNK = 1 << 20
# Bump when the layout of a layer kodev writes changes, so cached layers are not reused across versions.
LAYOUT_VERSION = "1"


@dataclass(frozen=True)
class Layer:
    """An uncompressed layer tar on disk. `diff_id` is the sha256 of exactly those bytes."""

    diff_id: str
    path: Path
    size: int
    created_by: str

    @property
    def hex(self) -> str:
        return self.diff_id.removeprefix("sha256:")


class _HashingFile:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.target.write(data)

    def tell(self) -> int:
        return self.size


def clean_name(name: str) -> str:
    """A tar member name: relative, normalized, no '..' (archives never escape their root)."""
    normalized = posixpath.normpath(name.replace(os.sep, "/"))
    if normalized.startswith("/") or normalized == ".." or normalized.startswith("../") or normalized == ".":
        raise ValueError(f"unsafe archive path {name!r}")
    return normalized


class LayerWriter:
    """Collects entries into a temp file in the cache, then renames it to `<diff id>.tar`."""

    def __init__(self, created_by: str, mtime: int) -> None:
        self.created_by = created_by
        self.mtime = mtime
        self._dir = cache.subdir("layers")
        # Closed by finish() or abort(); the writer itself is the context manager.
        self._tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=self._dir, prefix=".tmp-", suffix=".tar", delete=False)
        self._hashing = _HashingFile(self._tmp)  # type: ignore[arg-type]
        self._tar = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115
            fileobj=self._hashing, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8")

    def _info(self, name: str, kind: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(clean_name(name))
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = self.mtime
        return info

    def directory(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))

    def data(self, name: str, content: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode, 0, 0)
        info.size = len(content)
        self._tar.addfile(info, io.BytesIO(content))

    def file(self, name: str, source: Path, mode: int = 0o644) -> None:
        """Copy `source` in chunks (never whole in memory); a file that cannot be read names itself."""
        try:
            with open(source, "rb") as handle:
                info = self._info(name, tarfile.REGTYPE, mode, 0, 0)
                info.size = os.fstat(handle.fileno()).st_size
                self._tar.addfile(info, handle)
        except OSError as exc:
            raise ImageError(f"cannot read {source}: {exc.strerror or exc}. Fix its permissions or remove it, "
                             "then build again.") from None

    def finish(self) -> Layer:
        self._tar.close()
        self._tmp.close()
        digest = self._hashing.sha.hexdigest()
        final = self._dir / f"{digest}.tar"
        os.replace(self._tmp.name, final)
        return Layer(diff_id=f"sha256:{digest}", path=final, size=self._hashing.size, created_by=self.created_by)

    def abort(self) -> None:
        self._tar.close()
        self._tmp.close()
        Path(self._tmp.name).unlink(missing_ok=True)

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None:
            self.abort()


def cached_layer(key: str, created_by: str) -> Layer | None:
    """A layer recorded under `key` by `remember_layer`, if its file is still in the cache."""
    index = cache.subdir("layer-index") / key
    try:
        digest = index.read_text().strip()
    except OSError:
        return None
    path = cache.subdir("layers") / f"{digest}.tar"
    try:
        size = path.stat().st_size
        os.utime(path)  # recently used: the last to be pruned
    except OSError:
        return None
    return Layer(diff_id=f"sha256:{digest}", path=path, size=size, created_by=created_by)


def remember_layer(key: str, layer: Layer) -> None:
    index = cache.subdir("layer-index")
    tmp = index / f".tmp-{key}-{os.getpid()}"
    tmp.write_text(layer.hex)
    os.replace(tmp, index / key)


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join((LAYOUT_VERSION, *parts)).encode()).hexdigest()


APP_DIR = "ko-app"


def binary_layer(binary: Path, binary_digest: str, app_name: str, mtime: int) -> Layer:
    """The top layer: `/ko-app/<name>`, mode 0555. Reused from the cache when the binary is unchanged."""
    created_by = f"kodev: /{APP_DIR}/{app_name}"
    key = cache_key("binary", binary_digest, app_name, str(mtime))
    found = cached_layer(key, created_by)
    if found is not None:
        return found
    with LayerWriter(created_by, mtime) as writer:
        writer.directory(APP_DIR, 0o555)
        writer.file(f"{APP_DIR}/{app_name}", binary, 0o555)
        layer = writer.finish()
    remember_layer(key, layer)
    return layer


_GZIP_MAGIC = b"\x1f\x8b"


def layer_path(diff_id: str) -> Path:
    return cache.subdir("layers") / f"{diff_id.removeprefix('sha256:')}.tar"


def known_layer(diff_id: str, created_by: str) -> Layer | None:
    """The cached file of layer `diff_id`, if kodev has it."""
    path = layer_path(diff_id)
    try:
        size = path.stat().st_size
        os.utime(path)  # recently used: the last to be pruned
    except OSError:
        return None
    return Layer(diff_id=diff_id, path=path, size=size, created_by=created_by)


def store_layer(stream: BinaryIO, created_by: str, expected: str | None = None) -> Layer:
    """Copy a layer from `stream` (plain or gzip tar) into the cache, uncompressed, named by its diff ID.

    Streams in chunks, never holding the layer in memory. With `expected`, a different digest is an
    error (a corrupt or mislabelled archive) and nothing is kept.
    """
    import gzip
    import zlib

    head = stream.read(2)
    source: BinaryIO = stream
    if head == _GZIP_MAGIC:
        source = gzip.GzipFile(fileobj=_Prefixed(head, stream), mode="rb")  # type: ignore[call-overload]
        head = b""
    directory = cache.subdir("layers")
    tmp = tempfile.NamedTemporaryFile(dir=directory, prefix=".tmp-", suffix=".tar", delete=False)  # noqa: SIM115
    sha = hashlib.sha256(head)
    size = len(head)
    try:
        with tmp:
            tmp.write(head)
            for chunk in iter(lambda: source.read(_COPY_CHUNK), b""):
                sha.update(chunk)
                size += len(chunk)
                tmp.write(chunk)
        diff_id = f"sha256:{sha.hexdigest()}"
        if expected is not None and diff_id != expected:
            raise ImageError(f"layer data does not match its recorded digest {expected} (got {diff_id}): the "
                             "archive is corrupt or incomplete. Export or download it again.")
        final = layer_path(diff_id)
        os.replace(tmp.name, final)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise ImageError(f"cannot read a layer of the base image: {exc}. The archive is corrupt or "
                         "incomplete.") from None
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return Layer(diff_id=diff_id, path=final, size=size, created_by=created_by)


class _Prefixed:
    """A read-only stream that first returns bytes already read from `rest`."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self.prefix = prefix
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            if size < 0:
                data, self.prefix = self.prefix + self.rest.read(), b""
                return data
            data, self.prefix = self.prefix[:size], self.prefix[size:]
            if len(data) < size:
                data += self.rest.read(size - len(data))
            return data
        return self.rest.read(size)
