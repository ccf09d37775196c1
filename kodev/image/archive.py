"""Stream an image as a `docker save` tarball, chunk by chunk, so no layer is ever held in memory."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Iterator

from kodev.image.assemble import Image

_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _member(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data))
    yield data
    yield _padding(len(data))


def docker_save_stream(images: Iterable[tuple[Image, list[str]]], omit: frozenset[str] = frozenset()
                       ) -> Iterator[bytes]:
    """A docker-save archive of `images` (each with its tags): manifest.json, configs, layer files.

    Layers whose diff ID is in `omit` are listed in the manifest but their files are left out: Docker's
    classic store never opens the file of a layer whose chain ID it already has.
    """
    manifest = []
    written: set[str] = {diff_id.removeprefix("sha256:") for diff_id in omit}
    for image, tags in images:
        config_name = f"{image.config_digest.removeprefix('sha256:')}.json"
        manifest.append({"Config": config_name, "RepoTags": tags,
                         "Layers": [f"{layer.hex}/layer.tar" for layer in image.layers]})
        yield from _member(config_name, image.config_json)
        for layer in image.layers:
            if layer.hex in written:
                continue
            written.add(layer.hex)
            yield _header(f"{layer.hex}/layer.tar", layer.size)
            with open(layer.path, "rb") as handle:
                remaining = layer.size
                while remaining:
                    chunk = handle.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise OSError(f"layer file {layer.path} shrank while it was being sent")
                    remaining -= len(chunk)
                    yield chunk
            yield _padding(layer.size)
    yield from _member("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    yield b"\0" * (2 * _BLOCK)
