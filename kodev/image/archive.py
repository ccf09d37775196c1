"""Stream an image as a `docker save` tarball, chunk by chunk, so no layer is ever held in memory."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Iterator

from kodev.image.assemble import Image
from kodev.image.layers import Layer

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


def _file_member(name: str, layer: Layer) -> Iterator[bytes]:
    """A layer file as an archive member, read and sent in chunks."""
    yield _header(name, layer.size)
    with open(layer.path, "rb") as handle:
        remaining = layer.size
        while remaining:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                raise OSError(f"layer file {layer.path} shrank while it was being sent")
            remaining -= len(chunk)
            yield chunk
    yield _padding(layer.size)


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
            yield from _file_member(f"{layer.hex}/layer.tar", layer)
    yield from _member("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    yield b"\0" * (2 * _BLOCK)


OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def oci_manifest(image: Image) -> bytes:
    """The OCI manifest of `image`: uncompressed layers, so each layer's blob digest is its diff ID."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": image.config_digest, "size": len(image.config_json)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": layer.size} for layer in image.layers],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def oci_archive_stream(image: Image, tags: list[str], omit: frozenset[str] = frozenset()) -> Iterator[bytes]:
    """An OCI image layout as a tar stream, for the containerd image store; blobs in `omit` left out.

    The containerd store imports the index and manifests and only needs a layer blob when it has no
    snapshot for that layer, so blobs it already holds need not travel again.
    """
    import hashlib

    manifest = oci_manifest(image)
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "annotations": {"io.containerd.image.name": tag,
                            "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1]},
        } for tag in tags],
    }
    yield from _member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    yield from _member(f"blobs/sha256/{manifest_digest.removeprefix('sha256:')}", manifest)
    yield from _member(f"blobs/sha256/{image.config_digest.removeprefix('sha256:')}", image.config_json)
    written = {diff_id.removeprefix("sha256:") for diff_id in omit}
    for layer in image.layers:
        if layer.hex not in written:
            written.add(layer.hex)
            yield from _file_member(f"blobs/sha256/{layer.hex}", layer)
    yield from _member("index.json", json.dumps(index, separators=(",", ":")).encode())
    yield b"\0" * (2 * _BLOCK)
