"""Base images from outside kodev: `docker save` archives, OCI image layouts, and (via an export) the daemon.

Each is read once into the layer cache (uncompressed, named by diff ID) plus a small record under
`bases/`, keyed by what identifies the image (its ID or manifest digest), so later builds neither export
nor re-hash it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

from kodev import cache
from kodev.errors import ImageError
from kodev.image.base import BaseImage
from kodev.image.layers import Layer, known_layer, store_layer
from kodev.platform import Platform

_SMALL = 1 << 20  # archive members up to this size are kept in memory (configs, manifests)
_INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json"}


# --- the cache of resolved bases -----------------------------------------------------------------

def _record_path(key: str) -> Path:
    return cache.subdir("bases") / f"{key.replace(':', '-').replace('/', '_')}.json"


def cached(key: str, name: str) -> BaseImage | None:
    """The base recorded under `key`, if every one of its layer files is still in the cache."""
    try:
        record = json.loads(_record_path(key).read_text())
    except (OSError, ValueError):
        return None
    layers = [known_layer(diff_id, f"base {name}") for diff_id in record["diff_ids"]]
    if any(layer is None for layer in layers):
        return None
    return from_config(name, record["config"], [layer for layer in layers if layer is not None],
                       in_daemon=record.get("in_daemon"), has_var_run=record.get("has_var_run"))


def remember(key: str, base: BaseImage, config: Mapping[str, Any]) -> None:
    path = _record_path(key)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": config, "diff_ids": [layer.diff_id for layer in base.layers],
                               "in_daemon": base.in_daemon, "has_var_run": base.has_var_run}))
    tmp.replace(path)


def from_config(name: str, config: Mapping[str, Any], layers: Sequence[Layer], in_daemon: str | None = None,
                has_var_run: bool | None = None) -> BaseImage:
    """A BaseImage from a full image config document and its layers (checked against rootfs.diff_ids)."""
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if diff_ids != [layer.diff_id for layer in layers]:
        raise ImageError(f"base image {name}: its layers do not match the diff IDs its config lists; the "
                         "image is corrupt. Pull or export it again.")
    platform = Platform(str(config.get("os", "")), str(config.get("architecture", "")), config.get("variant"))
    return BaseImage(name=name, layers=tuple(layers), config=dict(config.get("config") or {}),
                     history=tuple(config.get("history") or ()), platform=platform, in_daemon=in_daemon,
                     has_var_run=has_var_run if has_var_run is not None else _has_var_run(layers))


def _has_var_run(layers: Sequence[Layer]) -> bool:
    """Whether any layer has /var/run (a directory, or Debian's symlink to /run): headers only, seeking."""
    for layer in layers:
        try:
            with tarfile.open(layer.path, mode="r:") as archive:
                for member in archive:
                    if member.name.lstrip("./").rstrip("/") == "var/run":
                        return True
        except (tarfile.TarError, OSError):
            continue
    return False


def check_platform(base: BaseImage, target: Platform) -> None:
    have = base.platform
    if have is None or not have.arch:
        return
    if not target.accepts(have):
        raise ImageError(f"base image {base.name} is for {have}, but kodev builds for {target}. Use a base "
                         f"for {target} (or a multi-platform one), or set `platform` in kodev.toml.")


# --- docker save archives (a file, or the daemon's export stream) ---------------------------------

def _json(data: bytes, what: str, source: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise ImageError(f"{source}: {what} is not valid JSON; the archive is corrupt.") from None


def read_docker_archive(stream: IO[bytes], name: str, source: str, target: Platform) -> tuple[BaseImage, Any]:
    """Read a `docker save` tarball front to back (no seeking): layers go to the cache as they pass.

    Returns the base for `target` (when the archive holds several images, the one for that platform)
    and its config document.
    """
    small: dict[str, bytes] = {}
    stored: dict[str, Layer] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if member.size <= _SMALL:
                    small[member.name] = handle.read()
                else:
                    stored[member.name] = store_layer(handle, f"base {name}")  # type: ignore[arg-type]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageError(f"{source}: not a readable `docker save` archive ({exc}). Create it again with "
                         "`docker save IMAGE -o FILE`.") from None
    if "manifest.json" not in small:
        raise ImageError(f"{source}: no manifest.json inside, so it is not a `docker save` archive. Create it "
                         "with `docker save IMAGE -o FILE`, or use oci:DIR for an OCI layout.")
    entries = _json(small["manifest.json"], "manifest.json", source)
    candidates = []
    for entry in entries:
        config_bytes = small.get(entry.get("Config", ""))
        if config_bytes is None:
            raise ImageError(f"{source}: the image config {entry.get('Config')} is missing; the archive is corrupt.")
        candidates.append((entry, _json(config_bytes, "an image config", source)))
    entry, config = _pick(candidates, target, source)
    layers = []
    for layer_name in entry.get("Layers", []):
        layer = stored.get(layer_name)
        if layer is None and layer_name in small:
            layer = store_layer(io.BytesIO(small[layer_name]), f"base {name}")
        if layer is None:
            raise ImageError(f"{source}: layer {layer_name} is listed but missing; the archive is incomplete.")
        layers.append(layer)
    return from_config(name, config, layers), config


def _platform_of(config: Mapping[str, Any]) -> Platform:
    return Platform(str(config.get("os", "")), str(config.get("architecture", "")), config.get("variant"))


def _pick(candidates: list[tuple[Any, Any]], target: Platform, source: str) -> tuple[Any, Any]:
    if len(candidates) == 1:
        return candidates[0]
    for entry, config in candidates:
        found = _platform_of(config)
        if target.accepts(found):
            return entry, config
    have = ", ".join(str(_platform_of(c)) for _, c in candidates) or "none"
    raise ImageError(f"{source} has no image for {target} (it has: {have}). Use a base built for {target}.")


class ChunkStream:
    """A file-like reader over an iterator of byte chunks (the daemon's export stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def docker_archive(path: Path, name: str, target: Platform) -> BaseImage:
    """`docker-archive:PATH`: cached by the file's identity (path, size, mtime)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageError(f"base image {name}: cannot read {path} ({exc.strerror}). Check the path.") from None
    identity = f"{path.resolve()}\0{info.st_size}\0{info.st_mtime_ns}".encode()
    key = f"archive-{hashlib.sha256(identity).hexdigest()}"
    found = cached(key, name)
    if found is None:
        with open(path, "rb") as handle:
            found, config = read_docker_archive(handle, name, str(path), target)
        remember(key, found, config)
    check_platform(found, target)
    return found


# --- OCI image layouts ----------------------------------------------------------------------------

def oci_layout(directory: Path, name: str, target: Platform) -> BaseImage:
    """`oci:DIR`: the image in an OCI layout (an index picks the target platform), cached by manifest digest."""
    index = _read_json(directory / "index.json", name, directory)
    descriptor = _descend(directory, index, target, name)
    digest = descriptor["digest"]
    found = cached(f"oci-{digest}", name)
    if found is not None:
        return found
    manifest = _read_json(_blob(directory, digest), name, directory)
    config = _read_json(_blob(directory, manifest["config"]["digest"]), name, directory)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    descriptors = manifest.get("layers") or []
    if len(diff_ids) != len(descriptors):
        raise ImageError(f"base image {name}: manifest and config disagree on the number of layers; the layout "
                         "is corrupt.")
    layers = []
    for diff_id, layer in zip(diff_ids, descriptors, strict=True):
        existing = known_layer(diff_id, f"base {name}")
        if existing is None:
            if "zstd" in str(layer.get("mediaType", "")):
                raise ImageError(f"base image {name}: layer {layer['digest']} is zstd-compressed, which kodev "
                                 "cannot read yet. Re-save the image with gzip or uncompressed layers.")
            with open(_blob(directory, layer["digest"]), "rb") as handle:
                existing = store_layer(handle, f"base {name}", expected=diff_id)
        layers.append(existing)
    base = from_config(name, config, layers)
    check_platform(base, target)
    remember(f"oci-{digest}", base, config)
    return base


def _blob(directory: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return directory / "blobs" / algorithm / hexdigest


def _read_json(path: Path, name: str, directory: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ImageError(f"base image {name}: {path.relative_to(directory)} is missing from the OCI layout at "
                         f"{directory}. Point oci: at a directory written by `skopeo copy ... oci:DIR` or "
                         "`crane pull --format=oci`.") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"base image {name}: cannot read {path}: {exc}. The layout is corrupt.") from None


def _descend(directory: Path, index: Any, target: Platform, name: str) -> Any:
    """Follow an index (and nested indexes) to the manifest for `target`."""
    manifests = index.get("manifests") or []
    if not manifests:
        raise ImageError(f"base image {name}: the OCI layout at {directory} lists no images.")
    if len(manifests) == 1 and manifests[0].get("mediaType") not in _INDEX_TYPES and "platform" not in manifests[0]:
        return manifests[0]
    seen = []
    for descriptor in manifests:
        if descriptor.get("mediaType") in _INDEX_TYPES:
            nested = _read_json(_blob(directory, descriptor["digest"]), name, directory)
            try:
                return _descend(directory, nested, target, name)
            except ImageError:
                continue
        platform = descriptor.get("platform") or {}
        found = Platform(platform.get("os", ""), platform.get("architecture", ""), platform.get("variant"))
        if "platform" not in descriptor:
            return descriptor
        seen.append(str(found))
        if target.accepts(found):
            return descriptor
    raise ImageError(f"base image {name} has no image for {target} (it has: {', '.join(seen) or 'none'}). Use a "
                     f"base built for {target}.")


def stream_reader(chunks: Iterator[bytes]) -> BinaryIO:
    return ChunkStream(chunks)  # type: ignore[return-value]
