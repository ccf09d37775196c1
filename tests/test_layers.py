"""Reproducible layer tarballs in the layer cache, named by diff ID; the cached binary layer."""

from __future__ import annotations

import hashlib
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from kodev import cache
from kodev.errors import ImageError
from kodev.image import layers
from kodev.image.layers import APP_DIR, Layer, LayerWriter, binary_layer, cache_key, clean_name


def members(layer: Layer) -> list[tarfile.TarInfo]:
    with tarfile.open(layer.path) as tar:
        return tar.getmembers()


def contents(layer: Layer) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(layer.path) as tar:
        for info in tar.getmembers():
            if info.isfile():
                handle = tar.extractfile(info)
                assert handle is not None
                out[info.name] = handle.read()
    return out


def sample_layer(tmp_path: Path, mtime: int = 1234, payload: bytes = b"payload") -> Layer:
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    with LayerWriter("test: sample", mtime) as writer:
        writer.directory("app", 0o750)
        writer.directory("app/owned", 0o700, uid=65532, gid=65533)
        writer.data("app/config.txt", b"key=value\n", 0o600)
        writer.file("app/bin", source, 0o755)
        return writer.finish()


def test_entries_have_given_modes_owners_and_mtime(tmp_path: Path) -> None:
    layer = sample_layer(tmp_path, mtime=1234)
    infos = {info.name: info for info in members(layer)}
    assert list(infos) == ["app", "app/owned", "app/config.txt", "app/bin"]
    assert infos["app"].isdir() and infos["app"].mode == 0o750
    assert infos["app/owned"].isdir() and infos["app/owned"].mode == 0o700
    assert infos["app/config.txt"].isfile() and infos["app/config.txt"].mode == 0o600
    assert infos["app/bin"].isfile() and infos["app/bin"].mode == 0o755
    assert (infos["app/owned"].uid, infos["app/owned"].gid) == (65532, 65533)
    for name in ("app", "app/config.txt", "app/bin"):
        assert (infos[name].uid, infos[name].gid) == (0, 0), name
    for info in infos.values():
        assert info.uname == ""
        assert info.gname == ""
        assert info.mtime == 1234
    assert contents(layer) == {"app/config.txt": b"key=value\n", "app/bin": b"payload"}
    assert layer.created_by == "test: sample"


def test_diff_id_is_sha256_of_file(tmp_path: Path) -> None:
    layer = sample_layer(tmp_path)
    data = layer.path.read_bytes()
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.hex == hashlib.sha256(data).hexdigest()
    assert layer.size == len(data)
    assert len(data) % tarfile.RECORDSIZE == 0


def test_file_named_by_diff_id_in_cache(tmp_path: Path) -> None:
    layer = sample_layer(tmp_path)
    assert layer.path == cache.subdir("layers") / f"{layer.hex}.tar"
    assert layer.path.is_file()
    assert Path(os.environ["KODEV_CACHE_DIR"]) in layer.path.parents


def test_same_content_same_diff_id(tmp_path: Path) -> None:
    first = sample_layer(tmp_path)
    second = sample_layer(tmp_path)
    assert first.diff_id == second.diff_id
    assert first.path == second.path
    assert first.path.read_bytes() == second.path.read_bytes()


def test_different_mtime_or_content_different_diff_id(tmp_path: Path) -> None:
    base = sample_layer(tmp_path, mtime=1234)
    assert sample_layer(tmp_path, mtime=1235).diff_id != base.diff_id
    assert sample_layer(tmp_path, payload=b"payload!").diff_id != base.diff_id


def test_entry_order_is_kept(tmp_path: Path) -> None:
    with LayerWriter("order", 0) as writer:
        writer.data("b", b"b")
        writer.data("a", b"a")
        first = writer.finish()
    with LayerWriter("order", 0) as writer:
        writer.data("a", b"a")
        writer.data("b", b"b")
        second = writer.finish()
    assert [m.name for m in members(first)] == ["b", "a"]
    assert first.diff_id != second.diff_id


@pytest.mark.parametrize(("name", "expected"), [("a/b", "a/b"), ("a/./b/", "a/b"), ("a//b", "a/b"),
                                                ("a/x/../b", "a/b"), ("ko-app", "ko-app")])
def test_clean_name_normalizes(name: str, expected: str) -> None:
    assert clean_name(name) == expected


@pytest.mark.parametrize("name", ["/etc/passwd", "/", "..", "../x", "a/../../x", "a/..", ".", ""])
def test_clean_name_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe archive path"):
        clean_name(name)


def test_writer_rejects_unsafe_names(tmp_path: Path) -> None:
    with LayerWriter("unsafe", 0) as writer:
        for bad in ("/abs", "../up"):
            with pytest.raises(ValueError):
                writer.data(bad, b"x")
            with pytest.raises(ValueError):
                writer.directory(bad)
        layer = writer.finish()
    assert members(layer) == []


def test_unreadable_source_is_image_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    with pytest.raises(ImageError, match=str(missing)), LayerWriter("missing", 0) as writer:
        temp = Path(writer._tmp.name)
        writer.file("x", missing)
    assert not temp.exists()


def test_with_block_that_raises_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_CACHE_DIR", str(tmp_path / "cache"))
    layers_dir = cache.subdir("layers")
    with pytest.raises(RuntimeError, match="boom"), LayerWriter("boom", 0) as writer:
        writer.data("a", b"x" * 10_000)
        temp = Path(writer._tmp.name)
        assert temp.parent == layers_dir
        assert temp.name.startswith(".tmp-")
        assert temp.exists()
        raise RuntimeError("boom")
    assert not temp.exists()
    assert list(layers_dir.iterdir()) == []


def test_finish_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_CACHE_DIR", str(tmp_path / "cache"))
    layer = sample_layer(tmp_path)
    assert [p.name for p in cache.subdir("layers").iterdir()] == [layer.path.name]


# --- binary_layer ----------------------------------------------------------------------------------


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "server"
    path.write_bytes(b"\x7fELF fake binary " + uuid.uuid4().bytes)
    return path


def test_binary_layer_layout(binary: Path) -> None:
    layer = binary_layer(binary, uuid.uuid4().hex, "server", 42)
    infos = members(layer)
    assert [info.name for info in infos] == [APP_DIR, f"{APP_DIR}/server"]
    app_dir, app = infos
    assert app_dir.isdir() and app_dir.mode == 0o555
    assert app.isfile() and app.mode == 0o555
    for info in infos:
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 42)
    assert contents(layer) == {f"{APP_DIR}/server": binary.read_bytes()}
    assert layer.created_by == "kodev: /ko-app/server"
    assert layer.diff_id == "sha256:" + hashlib.sha256(layer.path.read_bytes()).hexdigest()


def test_binary_layer_reused_without_rewriting(binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = uuid.uuid4().hex
    first = binary_layer(binary, digest, "server", 0)
    stat = first.path.stat()

    def fail(*args: object, **kwargs: object) -> LayerWriter:
        raise AssertionError("binary_layer wrote a layer that was in the cache")

    monkeypatch.setattr(layers, "LayerWriter", fail)
    second = binary_layer(binary, digest, "server", 0)
    assert second == first
    after = first.path.stat()
    # Not rewritten (same file); its mtime may move forward: reuse marks it recently used for pruning.
    assert (after.st_ino, after.st_size) == (stat.st_ino, stat.st_size)
    assert after.st_mtime_ns >= stat.st_mtime_ns


def test_binary_layer_cache_key_includes_name_and_mtime(binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = uuid.uuid4().hex
    first = binary_layer(binary, digest, "server", 0)
    renamed = binary_layer(binary, digest, "api", 0)
    later = binary_layer(binary, digest, "server", 7)
    assert len({first.diff_id, renamed.diff_id, later.diff_id}) == 3
    assert [m.name for m in members(renamed)] == [APP_DIR, f"{APP_DIR}/api"]


def test_binary_layer_rewritten_when_cached_file_is_gone(binary: Path) -> None:
    digest = uuid.uuid4().hex
    first = binary_layer(binary, digest, "server", 0)
    first.path.unlink()
    second = binary_layer(binary, digest, "server", 0)
    assert second.diff_id == first.diff_id
    assert second.path.is_file()


def test_binary_layer_new_digest_new_layer(binary: Path) -> None:
    first = binary_layer(binary, uuid.uuid4().hex, "server", 0)
    binary.write_bytes(b"another build")
    second = binary_layer(binary, uuid.uuid4().hex, "server", 0)
    assert second.diff_id != first.diff_id
    assert contents(second) == {f"{APP_DIR}/server": b"another build"}


def test_cache_key_is_stable_and_separates_parts() -> None:
    assert cache_key("a", "b") == cache_key("a", "b")
    assert cache_key("a", "b") != cache_key("ab")
    assert cache_key("a", "b") != cache_key("b", "a")
