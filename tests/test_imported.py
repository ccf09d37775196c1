"""Bases from outside kodev, without a daemon: layers stored by diff ID, `docker save` archives, OCI layouts.

Every archive and layout here is written by the test itself, byte by byte, so what kodev must find in it
is known exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kodev import cache
from kodev.errors import ImageError
from kodev.image import imported
from kodev.image.layers import layer_path, store_layer
from kodev.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
S390X = Platform("linux", "s390x")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own, so leftovers (or their absence) can be seen."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("KODEV_CACHE_DIR", str(directory))
    return directory


# --- helpers -----------------------------------------------------------------------------------------

def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tarball holding `files`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(platform: Platform, layers: list[bytes], env: list[str] | None = None,
                 user: str = "") -> dict[str, Any]:
    return {
        "architecture": platform.arch,
        "os": platform.os,
        "config": {"Env": env or ["PATH=/usr/bin"], "User": user, "WorkingDir": "/work"},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def docker_save_archive(path: Path, images: list[tuple[dict[str, Any], list[bytes]]],
                        manifest: bool = True, skip_layers: tuple[int, ...] = ()) -> Path:
    """A `docker save` tarball as Docker 20.10 writes it: layer dirs, configs, then manifest.json."""
    entries = []
    with tarfile.open(path, "w") as tar:
        written: set[str] = set()
        for config, layers in images:
            names = []
            for index, layer in enumerate(layers):
                name = f"{hashlib.sha256(layer).hexdigest()}/layer.tar"
                names.append(name)
                if name not in written and index not in skip_layers:
                    add(tar, name, layer)
                    written.add(name)
            config_bytes = json.dumps(config).encode()
            config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
            add(tar, config_name, config_bytes)
            entries.append({"Config": config_name, "RepoTags": ["kodev.test/imported:1"], "Layers": names})
        if manifest:
            add(tar, "manifest.json", json.dumps(entries).encode())
    return path


class Layout:
    """An OCI image layout being written: blobs by digest, then index.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "blobs" / "sha256").mkdir(parents=True)
        (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.directory / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(self, platform: Platform, layers: list[bytes], compress: bool = True,
              config: dict[str, Any] | None = None, with_platform: bool = True) -> dict[str, Any]:
        """Write config, layers and manifest; the manifest's descriptor (with its platform)."""
        config = config or image_config(platform, layers)
        config_descriptor = self.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        layer_descriptors = [
            self.blob(gzip.compress(layer), "application/vnd.oci.image.layer.v1.tar+gzip") if compress
            else self.blob(layer, "application/vnd.oci.image.layer.v1.tar")
            for layer in layers]
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_descriptor, "layers": layer_descriptors}
        descriptor = self.blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
        if with_platform:
            descriptor["platform"] = {"os": platform.os, "architecture": platform.arch}
        return descriptor

    def index(self, descriptors: list[dict[str, Any]], nested: bool = False) -> Path:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": descriptors}
        if nested:
            inner = self.blob(json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")
            index = {"schemaVersion": 2, "manifests": [inner]}
        (self.directory / "index.json").write_text(json.dumps(index))
        return self.directory


def layer_files(path: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[member.name] = handle.read()
    return out


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.rglob(".tmp-*"))


# --- store_layer -------------------------------------------------------------------------------------

def test_store_layer_plain_and_gzip_give_the_same_diff_id() -> None:
    data = layer_tar({"etc/hello": b"hello\n", "big": os.urandom(3 << 20)})
    plain = store_layer(io.BytesIO(data), "test: plain")
    compressed = store_layer(io.BytesIO(gzip.compress(data, compresslevel=1)), "test: gzip")
    assert plain.diff_id == compressed.diff_id == sha(data)
    assert plain.size == compressed.size == len(data)
    assert compressed.path == layer_path(sha(data))
    assert compressed.path.read_bytes() == data  # stored uncompressed


def test_store_layer_with_the_expected_digest_is_kept() -> None:
    data = layer_tar({"a": b"a"})
    layer = store_layer(io.BytesIO(gzip.compress(data)), "test", expected=sha(data))
    assert layer.diff_id == sha(data)
    assert layer.path.is_file()


def test_store_layer_digest_mismatch_is_an_error_and_keeps_nothing(_own_cache: Path) -> None:
    data = layer_tar({"a": b"what the archive really holds"})
    wrong = sha(b"something else")
    with pytest.raises(ImageError, match="does not match its recorded digest"):
        store_layer(io.BytesIO(gzip.compress(data)), "test", expected=wrong)
    layers_dir = cache.subdir("layers")
    assert list(layers_dir.iterdir()) == [], "a mismatched layer (or its temp file) was left in the cache"
    assert not layer_path(sha(data)).exists()
    assert leftovers(_own_cache) == []


@pytest.mark.parametrize("damage", ["garbage after magic", "truncated"])
def test_store_layer_corrupt_gzip_is_an_image_error(damage: str, _own_cache: Path) -> None:
    data = layer_tar({"a": os.urandom(200_000)})
    compressed = gzip.compress(data)
    stream = b"\x1f\x8b" + os.urandom(5000) if damage == "garbage after magic" else compressed[: len(compressed) // 2]
    with pytest.raises(ImageError, match="corrupt or"):
        store_layer(io.BytesIO(stream), "test")
    assert leftovers(_own_cache) == []
    assert list(cache.subdir("layers").iterdir()) == []


# --- docker save archives ----------------------------------------------------------------------------

def test_read_docker_archive_single_image(tmp_path: Path) -> None:
    small = layer_tar({"marker/file": b"bottom\n"})
    large = layer_tar({"data/blob": os.urandom(2 << 20)})  # > 1 MiB: streamed to the cache, not kept in memory
    config = image_config(AMD64, [small, large], env=["FOO=bar"], user="custom")
    path = docker_save_archive(tmp_path / "base.tar", [(config, [small, large])])
    with open(path, "rb") as handle:
        base, read_config = imported.read_docker_archive(handle, "docker-archive:base.tar", str(path), ARM64)
    assert read_config == config
    assert [layer.diff_id for layer in base.layers] == [sha(small), sha(large)]
    assert base.layers[0].path.read_bytes() == small
    assert base.layers[1].path.read_bytes() == large
    assert base.config["User"] == "custom"
    assert base.config["Env"] == ["FOO=bar"]
    assert base.platform == AMD64  # a single image is taken whatever the target; the caller checks platform
    with pytest.raises(ImageError, match="is for linux/amd64"):
        imported.check_platform(base, ARM64)


def test_read_docker_archive_picks_the_target_platform(tmp_path: Path) -> None:
    amd = layer_tar({"marker/file": b"amd64\n"})
    arm = layer_tar({"marker/file": b"arm64\n"})
    shared = layer_tar({"shared": b"both\n"})
    path = docker_save_archive(tmp_path / "multi.tar", [
        (image_config(AMD64, [shared, amd]), [shared, amd]),
        (image_config(ARM64, [shared, arm]), [shared, arm]),
    ])
    for target, own in ((AMD64, amd), (ARM64, arm)):
        with open(path, "rb") as handle:
            base, config = imported.read_docker_archive(handle, "multi", str(path), target)
        assert [layer.diff_id for layer in base.layers] == [sha(shared), sha(own)]
        assert config["architecture"] == target.arch
        assert layer_files(base.layers[1].path)["marker/file"] == f"{target.arch}\n".encode()
    with open(path, "rb") as handle, pytest.raises(ImageError) as caught:
        imported.read_docker_archive(handle, "multi", str(path), S390X)
    message = str(caught.value)
    assert "linux/s390x" in message and "linux/amd64" in message and "linux/arm64" in message


def test_read_docker_archive_without_manifest(tmp_path: Path) -> None:
    layer = layer_tar({"a": b"a"})
    path = docker_save_archive(tmp_path / "nomanifest.tar", [(image_config(AMD64, [layer]), [layer])],
                               manifest=False)
    with open(path, "rb") as handle, pytest.raises(ImageError, match=r"no manifest\.json"):
        imported.read_docker_archive(handle, "x", str(path), AMD64)


def test_read_docker_archive_missing_layer(tmp_path: Path) -> None:
    first, second = layer_tar({"a": b"a"}), layer_tar({"b": b"b"})
    path = docker_save_archive(tmp_path / "partial.tar", [(image_config(AMD64, [first, second]), [first, second])],
                               skip_layers=(1,))
    with open(path, "rb") as handle, pytest.raises(ImageError, match="listed but missing"):
        imported.read_docker_archive(handle, "x", str(path), AMD64)


def test_read_docker_archive_config_that_disagrees_with_layers(tmp_path: Path) -> None:
    layer = layer_tar({"a": b"a"})
    config = image_config(AMD64, [layer_tar({"other": b"x"})])
    path = docker_save_archive(tmp_path / "mismatch.tar", [(config, [layer])])
    with open(path, "rb") as handle, pytest.raises(ImageError, match="do not match the diff IDs"):
        imported.read_docker_archive(handle, "x", str(path), AMD64)


@pytest.mark.parametrize("content", ["random", "truncated"])
def test_read_docker_archive_corrupt(tmp_path: Path, content: str) -> None:
    path = tmp_path / "corrupt.tar"
    if content == "random":
        path.write_bytes(os.urandom(100_000))
    else:
        big = layer_tar({"blob": os.urandom(3 << 20)})
        full = docker_save_archive(tmp_path / "full.tar", [(image_config(AMD64, [big]), [big])]).read_bytes()
        path.write_bytes(full[: len(full) // 2])  # cut in the middle of the layer
    with open(path, "rb") as handle, pytest.raises(ImageError) as caught:
        imported.read_docker_archive(handle, "x", str(path), AMD64)
    assert str(path) in str(caught.value)
    assert leftovers(cache.cache_dir()) == []


def test_docker_archive_is_cached_by_file_identity(tmp_path: Path) -> None:
    layer = layer_tar({"marker/file": b"one\n"})
    path = docker_save_archive(tmp_path / "base.tar", [(image_config(AMD64, [layer]), [layer])])
    first = imported.docker_archive(path, "docker-archive:base.tar", AMD64)
    assert [x.diff_id for x in first.layers] == [sha(layer)]
    again = imported.docker_archive(path, "docker-archive:base.tar", AMD64)
    assert again == first
    changed = layer_tar({"marker/file": b"two\n"})
    docker_save_archive(path, [(image_config(AMD64, [changed]), [changed])])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert [x.diff_id for x in imported.docker_archive(path, "docker-archive:base.tar", AMD64).layers] == \
        [sha(changed)]


def test_docker_archive_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        imported.docker_archive(tmp_path / "nope.tar", "docker-archive:nope.tar", AMD64)


# --- OCI layouts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("nested", [False, True], ids=["flat-index", "nested-index"])
def test_oci_layout_picks_the_target_platform(tmp_path: Path, nested: bool) -> None:
    amd = layer_tar({"marker/file": b"amd64\n"})
    arm = layer_tar({"marker/file": b"arm64\n"})
    layout = Layout(tmp_path / "oci")
    directory = layout.index([layout.image(AMD64, [amd]), layout.image(ARM64, [arm])], nested=nested)
    for target, own in ((AMD64, amd), (ARM64, arm)):
        base = imported.oci_layout(directory, "oci:oci", target)
        assert [layer.diff_id for layer in base.layers] == [sha(own)]
        assert base.layers[0].path.read_bytes() == own  # decompressed
        assert base.platform == target
        assert base.config["WorkingDir"] == "/work"


def test_oci_layout_single_manifest_plain_layers(tmp_path: Path) -> None:
    first, second = layer_tar({"a": b"a"}), layer_tar({"b": b"b"})
    layout = Layout(tmp_path / "oci")
    directory = layout.index([layout.image(AMD64, [first, second], compress=False, with_platform=False)])
    base = imported.oci_layout(directory, "oci:oci", AMD64)
    assert [layer.diff_id for layer in base.layers] == [sha(first), sha(second)]


def test_oci_layout_without_the_platform_lists_what_it_has(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    directory = layout.index([layout.image(ARM64, [layer_tar({"a": b"arm"})]),
                              layout.image(S390X, [layer_tar({"a": b"s390x"})])])
    with pytest.raises(ImageError) as caught:
        imported.oci_layout(directory, "oci:oci", AMD64)
    message = str(caught.value)
    assert "linux/amd64" in message and "linux/arm64" in message and "linux/s390x" in message


def test_oci_layout_single_image_for_another_platform(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    directory = layout.index([layout.image(ARM64, [layer_tar({"a": b"a"})], with_platform=False)])
    with pytest.raises(ImageError, match="linux/arm64"):
        imported.oci_layout(directory, "oci:oci", AMD64)


def test_oci_layout_layer_that_does_not_match_its_diff_id(tmp_path: Path, _own_cache: Path) -> None:
    real, claimed = layer_tar({"a": b"real"}), layer_tar({"a": b"claimed"})
    layout = Layout(tmp_path / "oci")
    config = image_config(AMD64, [claimed])
    directory = layout.index([layout.image(AMD64, [real], config=config)])
    with pytest.raises(ImageError, match="does not match"):
        imported.oci_layout(directory, "oci:oci", AMD64)
    assert not layer_path(sha(real)).exists()
    assert leftovers(_own_cache) == []


def test_oci_layout_errors(tmp_path: Path) -> None:
    empty = Layout(tmp_path / "empty").index([])
    with pytest.raises(ImageError, match="lists no images"):
        imported.oci_layout(empty, "oci:empty", AMD64)

    no_index = tmp_path / "noindex"
    no_index.mkdir()
    with pytest.raises(ImageError, match=r"index\.json is missing"):
        imported.oci_layout(no_index, "oci:noindex", AMD64)

    bad_json = tmp_path / "badjson"
    bad_json.mkdir()
    (bad_json / "index.json").write_text("{not json")
    with pytest.raises(ImageError, match="corrupt"):
        imported.oci_layout(bad_json, "oci:badjson", AMD64)

    layout = Layout(tmp_path / "missingblob")
    descriptor = layout.image(AMD64, [layer_tar({"a": b"a"})])
    directory = layout.index([descriptor])
    (directory / "blobs" / "sha256" / descriptor["digest"].removeprefix("sha256:")).unlink()
    with pytest.raises(ImageError, match="missing from the OCI layout"):
        imported.oci_layout(directory, "oci:missingblob", AMD64)


def test_oci_layout_zstd_layer_is_refused(tmp_path: Path) -> None:
    data = layer_tar({"a": b"a"})
    layout = Layout(tmp_path / "oci")
    descriptor = layout.image(AMD64, [data], compress=False)
    manifest_path = layout.directory / "blobs" / "sha256" / descriptor["digest"].removeprefix("sha256:")
    manifest = json.loads(manifest_path.read_bytes())
    manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    descriptor = {**layout.blob(json.dumps(manifest).encode(), descriptor["mediaType"]),
                  "platform": descriptor["platform"]}
    directory = layout.index([descriptor])
    with pytest.raises(ImageError, match="zstd"):
        imported.oci_layout(directory, "oci:oci", AMD64)


# --- the record of resolved bases --------------------------------------------------------------------

def test_cached_and_remember_round_trip(tmp_path: Path) -> None:
    first, second = layer_tar({"a": b"a"}), layer_tar({"b": b"b"})
    config = image_config(AMD64, [first, second], env=["FOO=bar"], user="custom")
    layers = [store_layer(io.BytesIO(data), "test") for data in (first, second)]
    base = imported.from_config("example/base:1", config, layers, in_daemon="sha256:" + "ab" * 32)
    key = "daemon-sha256:" + "cd" * 32
    assert imported.cached(key, "example/base:1") is None
    imported.remember(key, base, config)
    found = imported.cached(key, "example/base:1")
    assert found is not None
    assert [layer.diff_id for layer in found.layers] == [sha(first), sha(second)]
    assert [layer.path for layer in found.layers] == [layer.path for layer in layers]
    assert found.config == base.config
    assert found.history == base.history
    assert found.platform == AMD64
    assert found.in_daemon == base.in_daemon
    assert imported.cached("daemon-other", "example/base:1") is None

    layers[1].path.unlink()  # a layer file gone from the cache: the record is no longer usable
    assert imported.cached(key, "example/base:1") is None
