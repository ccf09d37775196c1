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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kodev.errors import DaemonError, KodevError
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.image.layers import Layer
from kodev.publish.daemon import DaemonPublisher, detect_store
from kodev.publish.multi import MultiPublisher
from kodev.publish.pruning import PruningPublisher, hold_ref
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
    assert published.replaced == ("sha256:old",)  # the first one's result
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
        self.tagged: list[str] = []

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.tagged.append(f"{repository}:{tag}")

    def remove_image(self, image_id: str, noprune: bool = False) -> None:
        self.removed.append(image_id)


class _Daemon:
    """Answers inspect with a kodev-labelled image and records removals (only the deferral is under test)."""

    endpoint = "unix:///fake/docker.sock"

    def __init__(self) -> None:
        self.api = _Api()

    def inspect(self, ref: str) -> dict[str, Any] | None:
        if ref in self.api.removed or hold_ref(ref) in self.api.removed:
            return None  # its hold tag was its last name: the daemon deleted it
        return {"Id": ref, "Config": {"Labels": {COMMAND_LABEL: "example.com/m/cmd/hello"}}}

    def facts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        raise AssertionError("pruning never asks the daemon's version or info")


def test_pruning_defers_removal_until_prune() -> None:
    inner, daemon = RecordingPublisher(), _Daemon()
    pruning = PruningPublisher(inner, daemon)
    inner.replaced[REF] = "sha256:first"
    pruning.publish(image_of("base", "v2"), REF)
    inner.replaced[REF] = "sha256:second"
    pruning.publish(image_of("base", "v3"), REF)
    pruning.publish(image_of("base", "v3"), REF)  # nothing replaced
    assert daemon.api.removed == [] and daemon.api.tagged == []  # the old containers may still use them
    assert pruning.prune() == ["sha256:first", "sha256:second"]
    # Each held by kodev's own tag, and removed by that tag, never by ID (another tag keeps the image).
    assert daemon.api.tagged == [hold_ref("sha256:first"), hold_ref("sha256:second")]
    assert daemon.api.removed == [hold_ref("sha256:first"), hold_ref("sha256:second")]
    assert pruning.prune() == []  # each only once


def test_pruning_close_prunes_then_closes_the_inner_publisher() -> None:
    inner, daemon = RecordingPublisher(), _Daemon()
    pruning = PruningPublisher(inner, daemon)
    inner.replaced[REF] = "sha256:old"
    pruning.publish(image_of("base"), REF)
    assert not inner.closed
    pruning.close()
    assert daemon.api.removed == [hold_ref("sha256:old")] and inner.closed


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
        manifest = json.loads(member(tar, "manifest.json"))
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


# --- DaemonPublisher: which failed slim loads turn slim loads off -------------------------------------

def layered_image(tmp_path: Path, *contents: bytes) -> Image:
    """An image over real layer files, one per content, bottom first."""
    layers = tuple(real_image(tmp_path, f"l{hashlib.sha256(c).hexdigest()[:8]}", c).layers[0] for c in contents)
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [x.diff_id for x in layers]}}).encode()
    return Image(config, layers)


class _Loads:
    """A daemon's load endpoint that reads the archive kodev sends. `partial` and `full` say whether it
    "accept"s or "refuse"s an archive that leaves layer files out, and one that does not. Only the classic
    store is modelled, with one tag per image."""

    def __init__(self, partial: str = "refuse", full: str = "accept") -> None:
        self.partial, self.full = partial, full
        self.images: dict[str, dict[str, Any]] = {}  # tag -> inspect document
        self.archives: list[bool] = []  # per load: whether it left layers out
        self.id = f"fake-{uuid.uuid4().hex}"  # the daemon's ID: a refusal marker of its own in the test cache

    def load_image(self, chunks: Any) -> Iterator[dict[str, Any]]:
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            [entry] = json.loads(member(tar, "manifest.json"))
            partial = not set(entry["Layers"]) <= set(tar.getnames())
            config = member(tar, entry["Config"])
        self.archives.append(partial)
        if (self.partial if partial else self.full) == "refuse":
            yield {"errorDetail": {"message": "open layer.tar: no such file or directory"}}
            return
        document = {"Id": f"sha256:{hashlib.sha256(config).hexdigest()}",
                    "RootFS": {"Layers": json.loads(config)["rootfs"]["diff_ids"]}}
        for tag in entry["RepoTags"]:
            self.images[tag] = document
        yield {"stream": "Loaded image"}

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self.images[ref]

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": "Engine"}]}

    def info(self) -> dict[str, Any]:
        return {"ID": self.id, "Driver": "overlay2"}


class _LoadingDaemon:
    """`Daemon`'s surface that DaemonPublisher uses, over `_Loads`."""

    def __init__(self, api: _Loads) -> None:
        self.api = api
        self.endpoint = "unix:///fake/docker.sock"

    def inspect(self, ref: str) -> dict[str, Any] | None:
        return self.api.images.get(ref) or next((d for d in self.api.images.values() if d["Id"] == ref), None)

    def facts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.api.version(), self.api.info()


def test_a_daemon_that_refuses_the_full_archive_too_is_an_error_and_nothing_is_remembered(tmp_path: Path) -> None:
    """Refusing everything (a full disk, say) says nothing about partial archives.

    A fake daemon: the real dockerd cannot be made to refuse a load on cue. A refusal of the slim archive
    alone is tested against the real one in tests/integration/test_bases.py; a lost connection, and layers
    removed since kodev loaded them, in tests/integration/test_bad_input.py."""
    loads = _Loads(partial="accept")
    daemon = _LoadingDaemon(loads)
    publisher = DaemonPublisher(daemon)
    publisher.publish(layered_image(tmp_path, b"base", b"v1"), REF)
    loads.partial = loads.full = "refuse"
    with pytest.raises(DaemonError, match="refused the image"):
        publisher.publish(layered_image(tmp_path, b"base", b"v2"), REF)
    assert loads.archives == [False, True, False]
    assert not publisher.fallback_file().exists()
    loads.partial = loads.full = "accept"
    assert publisher.publish(layered_image(tmp_path, b"base", b"v3"), REF).slim


def member(tar: tarfile.TarFile, name: str) -> bytes:
    found = tar.extractfile(name)
    assert found is not None, f"{name} is not a file in the archive"
    return found.read()
