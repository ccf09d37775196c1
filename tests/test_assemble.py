"""Image configs as ko writes them, stacked on the static and scratch bases; the static base's content."""

from __future__ import annotations

import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import certifi
import pytest

from kodev.image import base as base_images
from kodev.image.assemble import COMMAND_LABEL, REVISION_LABEL, Image, ImageSpec, assemble, timestamp
from kodev.image.base import DEFAULT_PATH, NONROOT_UID, BaseImage
from kodev.image.kodata import kodata_layer
from kodev.image.layers import Layer, binary_layer
from kodev.platform import Platform

CREATED = 1_700_000_000
IMPORT_PATH = "example.com/mod/cmd/server"


@pytest.fixture
def static() -> BaseImage:
    # Function scope on purpose: the autouse fixture that points KODEV_CACHE_DIR at the session's private
    # cache is function-scoped, so a wider fixture would write into the user's real cache.
    return base_images.static()


@pytest.fixture
def kodata(tmp_path: Path) -> Layer:
    (tmp_path / "kodata").mkdir()
    (tmp_path / "kodata" / "index.html").write_text("hello")
    return kodata_layer(tmp_path / "kodata", tmp_path, 0)


def make_binary(tmp_path: Path, content: bytes) -> Layer:
    path = tmp_path / f"server-{uuid.uuid4().hex}"
    path.write_bytes(content)
    return binary_layer(path, uuid.uuid4().hex, "server", 0)


@pytest.fixture
def binary(tmp_path: Path) -> Layer:
    return make_binary(tmp_path, b"\x7fELF server v1")


def spec(**overrides: Any) -> ImageSpec:
    fields: dict[str, Any] = {
        "import_path": IMPORT_PATH,
        "app_name": "server",
        "platform": Platform("linux", "amd64"),
        "created": CREATED,
        "labels": {REVISION_LABEL: "0123abc", "com.example.team": "core"},
    }
    fields.update(overrides)
    return ImageSpec(**fields)


def document(image: Image) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(image.config_json)
    return result


SCRATCH = BaseImage(name="scratch", layers=())


# --- on static -------------------------------------------------------------------------------------


def test_static_config(static: BaseImage, kodata: Layer, binary: Layer) -> None:
    doc = document(assemble(static, kodata, binary, spec()))
    config = doc["config"]
    assert config["Entrypoint"] == ["/ko-app/server"]
    assert "Cmd" not in config
    env = config["Env"]
    assert f"PATH={DEFAULT_PATH}:/ko-app" in env
    assert [item for item in env if item.startswith("PATH=")] == [f"PATH={DEFAULT_PATH}:/ko-app"]
    assert "KO_DATA_PATH=/var/run/ko" in env
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in env
    assert config["User"] == "65532"
    assert config["WorkingDir"] == "/"


def test_labels(static: BaseImage, kodata: Layer, binary: Layer) -> None:
    labels = document(assemble(static, kodata, binary, spec()))["config"]["Labels"]
    assert labels == {COMMAND_LABEL: IMPORT_PATH, REVISION_LABEL: "0123abc", "com.example.team": "core"}
    assert COMMAND_LABEL == "dev.kodev.command"


def test_command_label_wins_over_spec_label(kodata: Layer, binary: Layer) -> None:
    labels = document(assemble(SCRATCH, kodata, binary, spec(labels={COMMAND_LABEL: "other"})))["config"]["Labels"]
    assert labels[COMMAND_LABEL] == IMPORT_PATH


def test_created_platform_and_rootfs(static: BaseImage, kodata: Layer, binary: Layer) -> None:
    image = assemble(static, kodata, binary, spec())
    doc = document(image)
    assert doc["created"] == "2023-11-14T22:13:20Z" == timestamp(CREATED)
    assert doc["os"] == "linux"
    assert doc["architecture"] == "amd64"
    assert "variant" not in doc
    assert doc["rootfs"] == {"type": "layers",
                             "diff_ids": [static.layers[0].diff_id, kodata.diff_id, binary.diff_id]}
    assert image.layers == (*static.layers, kodata, binary)
    assert image.diff_ids == doc["rootfs"]["diff_ids"]


def test_history_matches_layers(static: BaseImage, kodata: Layer, binary: Layer) -> None:
    doc = document(assemble(static, kodata, binary, spec()))
    history = doc["history"]
    assert len(history) == len(doc["rootfs"]["diff_ids"]) == 3
    assert history[0]["created_by"].startswith("kodev: static base")
    assert history[1] == {"created": "2023-11-14T22:13:20Z", "created_by": kodata.created_by}
    assert history[2] == {"created": "2023-11-14T22:13:20Z", "created_by": "kodev: /ko-app/server"}


def test_variant_in_config(kodata: Layer, binary: Layer) -> None:
    doc = document(assemble(SCRATCH, kodata, binary, spec(platform=Platform("linux", "arm", "v7"))))
    assert (doc["os"], doc["architecture"], doc["variant"]) == ("linux", "arm", "v7")


def test_created_zero_is_epoch(kodata: Layer, binary: Layer) -> None:
    assert document(assemble(SCRATCH, kodata, binary, spec(created=0)))["created"] == "1970-01-01T00:00:00Z"


# --- on scratch and other bases --------------------------------------------------------------------


def test_scratch_config(kodata: Layer, binary: Layer) -> None:
    image = assemble(SCRATCH, kodata, binary, spec())
    doc = document(image)
    config = doc["config"]
    assert config["Env"] == ["PATH=/ko-app", "KO_DATA_PATH=/var/run/ko"]
    assert config["Entrypoint"] == ["/ko-app/server"]
    assert "User" not in config
    assert doc["rootfs"]["diff_ids"] == [kodata.diff_id, binary.diff_id]
    assert len(doc["history"]) == 2


def test_base_config_cmd_dropped_and_rest_kept(kodata: Layer, binary: Layer) -> None:
    base = BaseImage(
        name="custom",
        layers=(),
        config={
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/bin:/usr/bin", "FOO=bar", "KO_DATA_PATH=/old"],
            "Labels": {"base.label": "kept", COMMAND_LABEL: "base"},
            "User": "1000",
            "ExposedPorts": {"8080/tcp": {}},
            "Volumes": None,
            "OnBuild": [],
        },
    )
    config = document(assemble(base, kodata, binary, spec(labels={})))["config"]
    assert "Cmd" not in config
    assert config["Env"] == ["FOO=bar", "PATH=/bin:/usr/bin:/ko-app", "KO_DATA_PATH=/var/run/ko"]
    assert config["Labels"] == {"base.label": "kept", COMMAND_LABEL: IMPORT_PATH}
    assert config["User"] == "1000"
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert "Volumes" not in config
    assert "OnBuild" not in config
    assert dict(base.config)["Cmd"] == ["/bin/sh"]  # the base itself is untouched


# --- digests ---------------------------------------------------------------------------------------


def test_identical_inputs_identical_digest(static: BaseImage, kodata: Layer, binary: Layer) -> None:
    first = assemble(static, kodata, binary, spec())
    second = assemble(base_images.static(), kodata, binary, spec())
    assert first.config_json == second.config_json
    assert first.config_digest == second.config_digest
    assert first.config_digest.startswith("sha256:")
    assert len(first.config_digest) == len("sha256:") + 64


def test_different_binary_different_digest(static: BaseImage, kodata: Layer, binary: Layer, tmp_path: Path) -> None:
    other = make_binary(tmp_path, b"\x7fELF server v2")
    assert other.diff_id != binary.diff_id
    assert assemble(static, kodata, binary, spec()).config_digest != (
        assemble(static, kodata, other, spec()).config_digest)


def test_different_spec_different_digest(kodata: Layer, binary: Layer) -> None:
    digest = assemble(SCRATCH, kodata, binary, spec()).config_digest
    assert assemble(SCRATCH, kodata, binary, spec(created=CREATED + 1)).config_digest != digest
    assert assemble(SCRATCH, kodata, binary, spec(labels={})).config_digest != digest
    assert assemble(SCRATCH, kodata, binary, spec(platform=Platform("linux", "arm64"))).config_digest != digest


# --- the static base -------------------------------------------------------------------------------


def static_members(static: BaseImage) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
    assert len(static.layers) == 1
    files: dict[str, bytes] = {}
    with tarfile.open(static.layers[0].path) as tar:
        infos = {info.name: info for info in tar.getmembers()}
        for name in ("etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ssl/certs/ca-certificates.crt"):
            handle = tar.extractfile(infos[name])
            assert handle is not None
            files[name] = handle.read()
    return infos, files


def test_static_users(static: BaseImage) -> None:
    infos, files = static_members(static)
    passwd = files["etc/passwd"].decode().splitlines()
    assert "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" in passwd
    assert any(line.startswith("root:x:0:0:") for line in passwd)
    assert "nonroot:x:65532:" in files["etc/group"].decode().splitlines()
    home = infos["home/nonroot"]
    assert home.isdir()
    assert (home.uid, home.gid, home.mode) == (NONROOT_UID, NONROOT_UID, 0o700)


def test_static_tmp_and_root(static: BaseImage) -> None:
    infos, _ = static_members(static)
    assert infos["tmp"].isdir()
    assert infos["tmp"].mode == 0o1777
    assert infos["root"].mode == 0o700


def test_static_ca_bundle_is_certifi(static: BaseImage) -> None:
    infos, files = static_members(static)
    assert files["etc/ssl/certs/ca-certificates.crt"] == Path(certifi.where()).read_bytes()
    assert infos["etc/ssl/certs/ca-certificates.crt"].mode == 0o644


def test_static_zoneinfo(static: BaseImage) -> None:
    infos, _ = static_members(static)
    assert infos["usr/share/zoneinfo/UTC"].isfile()
    assert infos["usr/share/zoneinfo/UTC"].size > 0
    assert infos["usr/share/zoneinfo/Europe/Paris"].isfile()
    assert infos["usr/share/zoneinfo/Europe"].isdir()


def test_static_has_no_python_packaging(static: BaseImage) -> None:
    infos, _ = static_members(static)
    for name in infos:
        parts = name.split("/")
        assert "__pycache__" not in parts, name
        assert parts[-1] != "__init__.py", name
        assert not name.endswith(".pyc"), name


def test_static_every_parent_directory_present(static: BaseImage) -> None:
    infos, _ = static_members(static)
    for name in infos:
        parent = name.rpartition("/")[0]
        if parent:
            assert parent in infos and infos[parent].isdir(), name


def test_static_owners_and_mtime(static: BaseImage) -> None:
    infos, _ = static_members(static)
    for name, info in infos.items():
        assert info.mtime == 0, name
        if not name.startswith("home/nonroot"):
            assert (info.uid, info.gid) == (0, 0), name
        assert (info.uname, info.gname) == ("", "")


def test_static_is_cached_and_stable(static: BaseImage) -> None:
    assert static.layers[0].path.parent == Path(os.environ["KODEV_CACHE_DIR"]) / "layers"
    again = base_images.static()
    assert again.layers[0].diff_id == static.layers[0].diff_id
    assert again.layers[0].path == static.layers[0].path
    assert again.config == static.config


def test_resolve(static: BaseImage) -> None:
    from kodev.image.resolve import resolve
    from kodev.platform import Platform

    def by_name(name: str) -> BaseImage:
        return resolve(name, "x", Platform("linux", "amd64"), None, False, Path("."), print)  # type: ignore[arg-type]

    assert by_name("static").layers[0].diff_id == static.layers[0].diff_id
    scratch = by_name("scratch")
    assert scratch.layers == ()
    assert dict(scratch.config) == {}
