"""Publishers (kodev/publish/): the wrappers' composition, the tarball's archive, the daemon's store detection.

`MultiPublisher` and `PruningPublisher` wrap fake destinations (tests/fakes.py) so order and deferral can be
observed; the pruning decisions themselves (in use, kodev's label) are tested against the real daemon in
tests/integration/test_publish.py. The tarball is written for real from layer files made here.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, cast

import pytest

from kodev.daemon import Daemon
from kodev.errors import KodevError
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.image.layers import Layer
from kodev.publish.daemon import detect_store
from kodev.publish.multi import MultiPublisher
from kodev.publish.pruning import PruningPublisher
from kodev.publish.tarball import TarballPublisher
from tests.fakes import RecordingPublisher, image_of

REF = "kodev.local/hello:latest"


# --- MultiPublisher ----------------------------------------------------------------------------------

def test_multi_publishes_to_each_in_order_and_answers_with_the_first() -> None:
    log: list[tuple[str, str]] = []
    first, second = RecordingPublisher("daemon", log), RecordingPublisher("tarball", log)
    first.replaced[REF] = "sha256:old"
    image = image_of("base", "binary")
    published = MultiPublisher(first, second).publish(image, REF)
    assert log == [("daemon", REF), ("tarball", REF)]
    assert published.replaced == "sha256:old"  # the first one's result
    assert published.image_id == image.config_digest


def test_multi_close_closes_every_destination_in_order() -> None:
    log: list[tuple[str, str]] = []
    multi = MultiPublisher(RecordingPublisher("a", log), RecordingPublisher("b", log), RecordingPublisher("c", log))
    multi.close()
    assert log == [("a", "close"), ("b", "close"), ("c", "close")]


def test_multi_stops_at_a_destination_that_fails() -> None:
    log: list[tuple[str, str]] = []
    first, second = RecordingPublisher("daemon", log), RecordingPublisher("tarball", log)
    first.fail[REF] = KodevError("refused")
    with pytest.raises(KodevError):
        MultiPublisher(first, second).publish(image_of("base"), REF)
    assert log == [("daemon", REF)]


# --- PruningPublisher: removal deferred to prune() ----------------------------------------------------

class _Api:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_image(self, image_id: str, noprune: bool = False) -> None:
        self.removed.append(image_id)


class _Daemon:
    """Answers inspect with a kodev-labelled image and records removals (only the deferral is under test)."""

    def __init__(self) -> None:
        self.api = _Api()

    def inspect(self, ref: str) -> dict[str, Any] | None:
        return {"Id": ref, "Config": {"Labels": {COMMAND_LABEL: "example.com/m/cmd/hello"}}}


def test_pruning_defers_removal_until_prune() -> None:
    inner, daemon = RecordingPublisher(), _Daemon()
    pruning = PruningPublisher(inner, cast(Daemon, daemon))
    inner.replaced[REF] = "sha256:first"
    pruning.publish(image_of("base", "v2"), REF)
    inner.replaced[REF] = "sha256:second"
    pruning.publish(image_of("base", "v3"), REF)
    pruning.publish(image_of("base", "v3"), REF)  # nothing replaced
    assert daemon.api.removed == []  # the old containers may still use them
    assert pruning.prune() == ["sha256:first", "sha256:second"]
    assert daemon.api.removed == ["sha256:first", "sha256:second"]
    assert pruning.prune() == []  # each only once


def test_pruning_close_prunes_then_closes_the_inner_publisher() -> None:
    inner, daemon = RecordingPublisher(), _Daemon()
    pruning = PruningPublisher(inner, cast(Daemon, daemon))
    inner.replaced[REF] = "sha256:old"
    pruning.publish(image_of("base"), REF)
    assert not inner.closed
    pruning.close()
    assert daemon.api.removed == ["sha256:old"] and inner.closed


# --- TarballPublisher ---------------------------------------------------------------------------------

def real_image(tmp_path: Path, name: str, content: bytes) -> Image:
    """An image over one real layer file (a tar holding `content`)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    path = tmp_path / f"{name}.tar"
    path.write_bytes(data)
    layer = Layer(f"sha256:{hashlib.sha256(data).hexdigest()}", path, len(data), name)
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    return Image(config, (layer,))


def test_tarball_writes_every_image_on_close(tmp_path: Path) -> None:
    out = tmp_path / "images.tar"
    publisher = TarballPublisher(out)
    one, two = real_image(tmp_path, "one", b"1"), real_image(tmp_path, "two", b"22")
    published = publisher.publish(one, "kodev.local/one:latest")
    publisher.publish(two, "kodev.local/two:latest")
    assert published.image_id == one.config_digest and published.ref.endswith("#kodev.local/one:latest")
    assert not out.exists()  # written once, at the end
    publisher.close()
    with tarfile.open(out) as tar:
        manifest = json.loads(cast(io.BufferedReader, tar.extractfile("manifest.json")).read())
        names = set(tar.getnames())
    assert [m["RepoTags"] for m in manifest] == [["kodev.local/one:latest"], ["kodev.local/two:latest"]]
    assert {f"{one.layers[0].hex}/layer.tar", f"{two.layers[0].hex}/layer.tar"} <= names
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_tarball_without_images_writes_nothing(tmp_path: Path) -> None:
    TarballPublisher(tmp_path / "images.tar").close()
    assert not (tmp_path / "images.tar").exists()


def test_tarball_in_a_missing_directory_is_a_clear_error_before_anything_is_built(tmp_path: Path) -> None:
    with pytest.raises(KodevError, match=r"cannot write the image archive .*missing/images.tar"):
        TarballPublisher(tmp_path / "missing" / "images.tar")


def test_tarball_that_cannot_be_written_at_close_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "gone" / "images.tar"
    out.parent.mkdir()
    publisher = TarballPublisher(out)
    publisher.publish(real_image(tmp_path, "one", b"1"), REF)
    out.parent.rmdir()  # the directory vanished while kodev was building
    with pytest.raises(KodevError, match=r"cannot write the image archive .*gone/images.tar"):
        publisher.close()


# --- which image store a daemon uses ------------------------------------------------------------------

@pytest.mark.parametrize(("version", "info", "store"), [
    ({"Components": [{"Name": "Engine"}]}, {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]},
     "classic"),
    ({"Components": [{"Name": "Engine"}]}, {"Driver": "overlayfs", "DriverStatus": [["driver-type",
                                                                                     "io.containerd.snapshotter.v1"]]},
     "containerd"),
    ({"Components": [{"Name": "Podman Engine"}]}, {"Driver": "overlay"}, "podman"),
    ({}, {}, "classic"),
])
def test_detect_store(version: dict[str, Any], info: dict[str, Any], store: str) -> None:
    assert detect_store(version, info) == store
