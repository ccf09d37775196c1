"""The streamed `docker save` archive: manifest, configs and each layer file exactly once."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from kodev.image.archive import docker_save_stream
from kodev.image.assemble import Image, ImageSpec, assemble
from kodev.image.base import BaseImage
from kodev.image.layers import Layer, LayerWriter
from kodev.platform import Platform

SCRATCH = BaseImage(name="scratch", layers=())


def layer(name: str, content: bytes) -> Layer:
    with LayerWriter(f"test: {name}", 0) as writer:
        writer.data(name, content, 0o555)
        return writer.finish()


def image(kodata: Layer, binary: Layer, app: str) -> Image:
    spec = ImageSpec(import_path=f"example.com/m/cmd/{app}", app_name=app, platform=Platform("linux", "amd64"),
                     created=0, labels={})
    return assemble(SCRATCH, kodata, binary, spec)


def archive(images: list[tuple[Image, list[str]]]) -> bytes:
    return b"".join(docker_save_stream(images))


def open_archive(data: bytes) -> tuple[list[str], dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        files = {}
        for info in tar.getmembers():
            assert info.isfile(), info.name
            handle = tar.extractfile(info)
            assert handle is not None
            files[info.name] = handle.read()
    return names, files


@pytest.fixture
def kodata() -> Layer:
    return layer("var/run/ko/shared.txt", b"shared " + uuid.uuid4().bytes)


@pytest.fixture
def big_binary() -> Layer:
    # More than one 1 MiB chunk, and not a multiple of the tar block size.
    return layer("ko-app/big", bytes(range(256)) * 6000 + uuid.uuid4().bytes + b"tail")


def test_single_image(kodata: Layer, big_binary: Layer) -> None:
    img = image(kodata, big_binary, "big")
    data = archive([(img, ["kodev.local/big:latest"])])
    assert len(data) % tarfile.BLOCKSIZE == 0
    assert data.endswith(b"\0" * (2 * tarfile.BLOCKSIZE))
    names, files = open_archive(data)
    manifest = json.loads(files["manifest.json"])
    config_name = f"{img.config_digest.removeprefix('sha256:')}.json"
    assert manifest == [{
        "Config": config_name,
        "RepoTags": ["kodev.local/big:latest"],
        "Layers": [f"{kodata.hex}/layer.tar", f"{big_binary.hex}/layer.tar"],
    }]
    assert files[config_name] == img.config_json
    for item in img.layers:
        assert files[f"{item.hex}/layer.tar"] == item.path.read_bytes()
    assert sorted(names) == sorted([config_name, f"{kodata.hex}/layer.tar", f"{big_binary.hex}/layer.tar",
                                    "manifest.json"])


def test_layer_members_are_valid_layers(kodata: Layer, big_binary: Layer) -> None:
    _, files = open_archive(archive([(image(kodata, big_binary, "big"), [])]))
    with tarfile.open(fileobj=io.BytesIO(files[f"{big_binary.hex}/layer.tar"])) as inner:
        assert inner.getnames() == ["ko-app/big"]


def test_shared_layer_written_once(kodata: Layer) -> None:
    one = image(kodata, layer("ko-app/one", b"one " + uuid.uuid4().bytes), "one")
    two = image(kodata, layer("ko-app/two", b"two " + uuid.uuid4().bytes), "two")
    data = archive([(one, ["kodev.local/one:latest"]), (two, ["kodev.local/two:latest", "kodev.local/two:dev"])])
    names, files = open_archive(data)
    assert names.count(f"{kodata.hex}/layer.tar") == 1
    assert len([n for n in names if n.endswith("/layer.tar")]) == 3
    manifest: list[dict[str, Any]] = json.loads(files["manifest.json"])
    assert [entry["RepoTags"] for entry in manifest] == [["kodev.local/one:latest"],
                                                         ["kodev.local/two:latest", "kodev.local/two:dev"]]
    for entry, img in zip(manifest, (one, two), strict=True):
        assert entry["Config"] == f"{img.config_digest.removeprefix('sha256:')}.json"
        assert files[entry["Config"]] == img.config_json
        assert entry["Layers"] == [f"{item.hex}/layer.tar" for item in img.layers]
        assert entry["Layers"][0] == f"{kodata.hex}/layer.tar"
        for item in img.layers:
            assert files[f"{item.hex}/layer.tar"] == item.path.read_bytes()


def test_every_layer_referenced_is_present(kodata: Layer) -> None:
    imgs = [image(kodata, layer(f"ko-app/app{i}", f"app {i} {uuid.uuid4()}".encode()), f"app{i}") for i in range(3)]
    names, files = open_archive(archive([(img, [f"kodev.local/app{i}:latest"]) for i, img in enumerate(imgs)]))
    manifest = json.loads(files["manifest.json"])
    for entry in manifest:
        assert entry["Config"] in files
        for name in entry["Layers"]:
            assert name in files
    assert len(names) == len(set(names))


def test_empty_image_list() -> None:
    names, files = open_archive(archive([]))
    assert names == ["manifest.json"]
    assert json.loads(files["manifest.json"]) == []


def test_stream_is_lazy_and_chunked(kodata: Layer, big_binary: Layer) -> None:
    chunks = list(docker_save_stream([(image(kodata, big_binary, "big"), [])]))
    assert max(len(chunk) for chunk in chunks) <= 1 << 20
    assert sum(len(chunk) for chunk in chunks) > big_binary.size


def test_layer_file_shorter_than_recorded(tmp_path: Path, kodata: Layer) -> None:
    real = layer("ko-app/x", b"x " + uuid.uuid4().bytes)
    short = Layer(diff_id=real.diff_id, path=real.path, size=real.size + 512, created_by=real.created_by)
    img = Image(config_json=b"{}", layers=(kodata, short))
    with pytest.raises(OSError, match="shrank"):
        archive([(img, [])])
