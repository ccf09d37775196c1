"""The kodata layer: a command's kodata/ at /var/run/ko, mode 0555, symlinks dereferenced inside the module."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kodev.errors import ImageError
from kodev.image.kodata import KodataEntry, kodata_layer, kodata_patch, kodata_snapshot, walk
from kodev.image.layers import Layer

ROOT = "var/run/ko"


def read(layer: Layer) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    files: dict[str, bytes] = {}
    with tarfile.open(layer.path) as tar:
        infos = tar.getmembers()
        for info in infos:
            if info.isfile():
                handle = tar.extractfile(info)
                assert handle is not None
                files[info.name] = handle.read()
    return infos, files


@pytest.fixture
def module(tmp_path: Path) -> Path:
    root = tmp_path / "mod"
    root.mkdir()
    (root / "go.mod").write_text("module example.com/mod\n")
    return root


@pytest.fixture
def kodata(module: Path) -> Path:
    path = module / "cmd" / "x" / "kodata"
    path.mkdir(parents=True)
    return path


def test_nested_tree(kodata: Path, module: Path) -> None:
    (kodata / "index.html").write_text("<html>")
    (kodata / "static" / "css").mkdir(parents=True)
    (kodata / "static" / "css" / "site.css").write_text("body{}")
    (kodata / "static" / "app.js").write_text("js")
    (kodata / "empty").mkdir()
    infos, files = read(kodata_layer(kodata, module, 0))
    names = [info.name for info in infos]
    assert names == [
        ROOT,
        f"{ROOT}/empty",
        f"{ROOT}/index.html",
        f"{ROOT}/static",
        f"{ROOT}/static/app.js",
        f"{ROOT}/static/css",
        f"{ROOT}/static/css/site.css",
    ]
    assert files == {
        f"{ROOT}/index.html": b"<html>",
        f"{ROOT}/static/app.js": b"js",
        f"{ROOT}/static/css/site.css": b"body{}",
    }
    kinds = {info.name: info.isdir() for info in infos}
    assert kinds[f"{ROOT}/empty"] and kinds[f"{ROOT}/static/css"] and not kinds[f"{ROOT}/index.html"]


def test_every_entry_is_0555_root_owned(kodata: Path, module: Path) -> None:
    (kodata / "a.txt").write_text("a")
    os.chmod(kodata / "a.txt", 0o600)
    (kodata / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(kodata / "run.sh", 0o777)
    (kodata / "d").mkdir(mode=0o700)
    (kodata / "d" / "b").write_text("b")
    infos, _ = read(kodata_layer(kodata, module, 0))
    assert len(infos) == 5
    for info in infos:
        assert info.name == ROOT or info.name.startswith(f"{ROOT}/")
        assert info.mode == 0o555, info.name
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")


def test_names_sorted_per_directory(kodata: Path, module: Path) -> None:
    for name in ("zeta", "Alpha", "beta", "a-b", "a.b"):
        (kodata / name).write_text(name)
    (kodata / "a").mkdir()
    (kodata / "a" / "z").write_text("z")
    (kodata / "a" / "m").write_text("m")
    entries = list(walk(kodata, module))
    assert [e.name for e in entries] == ["Alpha", "a", "a/m", "a/z", "a-b", "a.b", "beta", "zeta"]
    assert entries[1] == KodataEntry("a", None)
    assert entries[2] == KodataEntry("a/m", kodata / "a" / "m")


def test_mtime_applied(kodata: Path, module: Path) -> None:
    (kodata / "f").write_text("f")
    (kodata / "d").mkdir()
    infos, _ = read(kodata_layer(kodata, module, 1_650_000_000))
    assert [info.mtime for info in infos] == [1_650_000_000] * 3
    other = kodata_layer(kodata, module, 0)
    assert other.diff_id != kodata_layer(kodata, module, 1_650_000_000).diff_id


def test_same_tree_same_diff_id(module: Path, tmp_path: Path) -> None:
    def make(parent: Path) -> Path:
        path = parent / "kodata"
        (path / "d").mkdir(parents=True)
        (path / "d" / "f").write_text("same")
        return path

    first = make(module / "one")
    second = make(module / "two")
    os.utime(second / "d" / "f", (1, 1))  # host mtimes do not matter
    assert kodata_layer(first, module, 0).diff_id == kodata_layer(second, module, 0).diff_id


def test_missing_kodata_gives_only_root(module: Path) -> None:
    for layer in (kodata_layer(module / "cmd" / "none" / "kodata", module, 0), kodata_layer(None, module, 0)):
        infos, files = read(layer)
        assert [info.name for info in infos] == [ROOT]
        assert infos[0].isdir()
        assert infos[0].mode == 0o555
        assert files == {}
        assert layer.created_by == "kodev: kodata at /var/run/ko"


def test_missing_kodata_mtime(module: Path) -> None:
    infos, _ = read(kodata_layer(None, module, 99))
    assert infos[0].mtime == 99


def test_kodata_that_is_a_file(module: Path) -> None:
    path = module / "kodata"
    path.write_text("not a dir")
    with pytest.raises(ImageError, match="is not a directory"):
        kodata_layer(path, module, 0)


# --- symlinks --------------------------------------------------------------------------------------


def test_file_symlink_inside_root_is_a_regular_file(kodata: Path, module: Path) -> None:
    shared = module / "shared"
    shared.mkdir()
    (shared / "config.json").write_text('{"a": 1}')
    (kodata / "config.json").symlink_to(Path("..") / ".." / ".." / "shared" / "config.json")
    (kodata / "abs.json").symlink_to(shared / "config.json")
    infos, files = read(kodata_layer(kodata, module, 0))
    by_name = {info.name: info for info in infos}
    for name in (f"{ROOT}/config.json", f"{ROOT}/abs.json"):
        assert by_name[name].isreg(), name
        assert not by_name[name].issym()
        assert by_name[name].mode == 0o555
        assert files[name] == b'{"a": 1}'


def test_symlinked_directory_inside_root_is_walked(kodata: Path, module: Path) -> None:
    assets = module / "assets"
    (assets / "img").mkdir(parents=True)
    (assets / "img" / "logo.svg").write_text("<svg/>")
    (assets / "robots.txt").write_text("ok")
    (kodata / "assets").symlink_to(assets)
    infos, files = read(kodata_layer(kodata, module, 0))
    assert [info.name for info in infos] == [
        ROOT, f"{ROOT}/assets", f"{ROOT}/assets/img", f"{ROOT}/assets/img/logo.svg", f"{ROOT}/assets/robots.txt"]
    assert infos[1].isdir()
    assert files[f"{ROOT}/assets/img/logo.svg"] == b"<svg/>"


def test_kodata_itself_a_symlink_inside_root(module: Path) -> None:
    real = module / "data"
    real.mkdir()
    (real / "f").write_text("f")
    link = module / "cmd" / "kodata"
    link.parent.mkdir()
    link.symlink_to(real)
    _, files = read(kodata_layer(link, module, 0))
    assert files == {f"{ROOT}/f": b"f"}


def test_kodata_symlink_with_root_given_through_a_symlink(tmp_path: Path) -> None:
    # The module is reached through a symlinked directory (as with a symlinked checkout, or /tmp on macOS);
    # kodata is a symlink to a directory inside the module. Entries inside kodata are checked against the
    # resolved root, so the top-level link must be too.
    real_module = tmp_path / "real" / "mod"
    (real_module / "data").mkdir(parents=True)
    (real_module / "data" / "f").write_text("f")
    (real_module / "kodata").symlink_to("data")
    (tmp_path / "via").symlink_to(tmp_path / "real")
    module = tmp_path / "via" / "mod"
    _, files = read(kodata_layer(module / "kodata", module, 0))
    assert files == {f"{ROOT}/f": b"f"}


def test_symlink_inside_root_with_root_given_through_a_symlink(tmp_path: Path) -> None:
    real_module = tmp_path / "real" / "mod"
    (real_module / "kodata").mkdir(parents=True)
    (real_module / "shared.txt").write_text("s")
    (real_module / "kodata" / "link.txt").symlink_to(real_module / "shared.txt")
    (tmp_path / "via").symlink_to(tmp_path / "real")
    module = tmp_path / "via" / "mod"
    _, files = read(kodata_layer(module / "kodata", module, 0))
    assert files == {f"{ROOT}/link.txt": b"s"}


def test_symlink_escaping_root(kodata: Path, module: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("secret")
    link = kodata / "key"
    link.symlink_to(secret)
    with pytest.raises(ImageError) as info:
        kodata_layer(kodata, module, 0)
    assert str(link) in str(info.value)
    assert "outside" in str(info.value)


def test_directory_symlink_escaping_root(kodata: Path, module: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f").write_text("f")
    link = kodata / "sub" / "out"
    link.parent.mkdir()
    link.symlink_to(Path("..") / ".." / ".." / ".." / ".." / "elsewhere")
    with pytest.raises(ImageError) as info:
        list(walk(kodata, module))
    assert str(link) in str(info.value)


def test_kodata_symlink_escaping_root(module: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = module / "kodata"
    link.symlink_to(outside)
    with pytest.raises(ImageError) as info:
        kodata_layer(link, module, 0)
    assert str(link) in str(info.value)


@pytest.mark.timeout(10)
def test_file_symlink_loop(kodata: Path, module: Path) -> None:
    (kodata / "a").symlink_to("b")
    (kodata / "b").symlink_to("a")
    with pytest.raises(ImageError, match="loop") as info:
        kodata_layer(kodata, module, 0)
    assert str(kodata / "a") in str(info.value)


@pytest.mark.timeout(10)
def test_directory_symlink_to_ancestor(kodata: Path, module: Path) -> None:
    (kodata / "sub").mkdir()
    (kodata / "sub" / "f").write_text("f")
    (kodata / "sub" / "up").symlink_to("..")
    with pytest.raises(ImageError, match="loop") as info:
        kodata_layer(kodata, module, 0)
    assert str(kodata / "sub" / "up") in str(info.value)


@pytest.mark.timeout(10)
def test_directory_symlink_to_self(kodata: Path, module: Path) -> None:
    (kodata / "self").symlink_to(".")
    with pytest.raises(ImageError, match="loop"):
        list(walk(kodata, module))


@pytest.mark.timeout(10)
def test_directory_symlink_to_module_root(kodata: Path, module: Path) -> None:
    # The module root holds kodata itself: walking it would come back to kodata forever.
    (kodata / "mod").symlink_to(module)
    with pytest.raises(ImageError, match="loop"):
        list(walk(kodata, module))


@pytest.mark.timeout(10)
def test_mutual_directory_symlinks(kodata: Path, module: Path) -> None:
    (module / "x").mkdir()
    (module / "y").mkdir()
    (module / "x" / "to_y").symlink_to(module / "y")
    (module / "y" / "to_x").symlink_to(module / "x")
    (kodata / "x").symlink_to(module / "x")
    with pytest.raises(ImageError, match="loop"):
        list(walk(kodata, module))


def test_same_directory_linked_twice_is_not_a_loop(kodata: Path, module: Path) -> None:
    shared = module / "shared"
    shared.mkdir()
    (shared / "f").write_text("f")
    (kodata / "one").symlink_to(shared)
    (kodata / "two").symlink_to(shared)
    names = [e.name for e in walk(kodata, module)]
    assert names == ["one", "one/f", "two", "two/f"]


def test_dangling_symlink(kodata: Path, module: Path) -> None:
    link = kodata / "gone"
    link.symlink_to("nowhere.txt")
    with pytest.raises(ImageError) as info:
        kodata_layer(kodata, module, 0)
    assert str(link) in str(info.value)
    assert "does not exist" in str(info.value)


def test_fifo_is_rejected(kodata: Path, module: Path) -> None:
    fifo = kodata / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="neither a regular file nor a directory") as info:
        kodata_layer(kodata, module, 0)
    assert str(fifo) in str(info.value)


def test_failed_layer_leaves_no_temp_files(kodata: Path, module: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_CACHE_DIR", str(tmp_path / "cache"))
    (kodata / "gone").symlink_to("nowhere")
    with pytest.raises(ImageError):
        kodata_layer(kodata, module, 0)
    layers_dir = tmp_path / "cache" / "layers"
    assert not layers_dir.exists() or list(layers_dir.iterdir()) == []


def _build_as_nobody(kodata: Path, root: Path, cache_dir: Path, result: Path) -> None:
    """In a child process without root's privileges (root reads any file, whatever its mode)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
    os.environ["KODEV_CACHE_DIR"] = str(cache_dir)
    try:
        kodata_layer(kodata, root, 0)
        result.write_text("built")
    except ImageError as exc:
        result.write_text(f"ImageError: {exc}")


def test_unreadable_kodata_file_is_a_clear_error() -> None:
    import multiprocessing
    import shutil
    import tempfile

    # Not pytest's tmp_path: its parent is 0700, which the unprivileged child could not enter.
    tmp_path = Path(tempfile.mkdtemp(prefix="kodev-unreadable-"))
    try:
        _check_unreadable(tmp_path, multiprocessing.get_context("fork"))
    finally:
        shutil.rmtree(tmp_path)


def _check_unreadable(tmp_path: Path, context: Any) -> None:
    root = tmp_path / "module"
    kodata = root / "kodata"
    kodata.mkdir(parents=True)
    (kodata / "ok.txt").write_text("fine")
    secret = kodata / "secret.txt"
    secret.write_text("no")
    secret.chmod(0o000)
    for directory in (tmp_path, root, kodata):
        directory.chmod(0o755)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o777)
    cache_dir.chmod(0o777)
    result = tmp_path / "result.txt"
    result.touch(mode=0o666)
    result.chmod(0o666)
    child = context.Process(target=_build_as_nobody, args=(kodata, root, cache_dir, result))
    child.start()
    child.join(60)
    outcome = result.read_text()
    assert outcome.startswith("ImageError: "), f"child exit code {child.exitcode}: {outcome!r}"
    assert str(secret) in outcome and "Permission denied" in outcome
    assert not list((cache_dir / "layers").glob(".tmp-*"))  # nothing half-written left behind


# --- what a running container needs to catch up with a kodata edit ------------------------------------------

def test_the_index_names_the_files_an_edit_added_or_changed_and_those_it_removed(
        kodata: Path, module: Path, tmp_path: Path) -> None:
    (kodata / "index.html").write_text("<html>")
    (kodata / "old.txt").write_text("old")
    (kodata / "static").mkdir()
    (kodata / "static" / "app.js").write_text("js")
    _, before = kodata_snapshot(kodata, module, 0)
    (kodata / "index.html").write_text("<html>new")
    (kodata / "static" / "css").mkdir()
    (kodata / "static" / "css" / "site.css").write_text("body{}")
    (kodata / "old.txt").unlink()
    layer, after = kodata_snapshot(kodata, module, 0, parents=True)
    changed, removed = after.changes_since(before)
    assert changed == ("index.html", "static/css", "static/css/site.css")
    assert removed == ("old.txt",)
    assert after.changes_since(after) == ((), ())

    patch = kodata_patch(layer, changed, tmp_path / "patch.tar")
    infos, files = read(Layer("sha256:x", patch, patch.stat().st_size, "patch"))
    # Only those entries, as the layer has them; never var or var/run (a symlink on Debian).
    assert [(i.name, i.mode, i.uid, i.type) for i in infos] == [
        (f"{ROOT}/index.html", 0o555, 0, tarfile.REGTYPE),
        (f"{ROOT}/static/css", 0o555, 0, tarfile.DIRTYPE),
        (f"{ROOT}/static/css/site.css", 0o555, 0, tarfile.REGTYPE)]
    assert files == {f"{ROOT}/index.html": b"<html>new", f"{ROOT}/static/css/site.css": b"body{}"}
