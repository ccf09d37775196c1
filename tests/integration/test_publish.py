"""Publishers against the real daemon: the tarball destination, and pruning the images a publish replaced.

Each test builds examples/hello's `hello` command through a real Session (real go, real dockerd) into a
repository of its own (`kodev.test/<random>`), so concurrent runs never retag each other's images; and its
module is renamed (example.com/p<random>), so its images are its own by ID too: kodev's builds are
reproducible, and the same sources built by another test (or another session on the daemon) would give the
very image these tests remove, prune and expect gone.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kodev.builder import BuiltImage
from kodev.publish.pruning import PruningPublisher
from kodev.session import Session
from kodev.ui import UI
from tests.integration.conftest import run_container

GREETING = "internal/greeting/greeting.go"


@pytest.fixture
def repo(hello: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """hello's kodev.toml names a repository of this test's own; kodev runs in hello. Images made under it,
    and any left dangling by the test, are removed afterwards."""
    import docker.errors

    uid = uuid.uuid4().hex[:12]
    name = f"kodev.test/{uid}"
    for path in [hello / "go.mod", *hello.rglob("*.go")]:
        path.write_text(path.read_text().replace("example.com/hello", f"example.com/p{uid}"))
    (hello / "kodev.toml").write_text(f'repo = "{name}"\n')
    monkeypatch.chdir(hello)
    made: list[str] = []
    yield name
    # The low-level list: `images.list()` inspects each image and fails when another test removes one meanwhile.
    for image in docker_client.api.images():
        if any(tag.startswith(f"{name}/") for tag in image.get("RepoTags") or ()):
            made.append(image["Id"])
    for image_id in [*made, *_LEFT]:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            docker_client.images.remove(image_id, force=True)
    _LEFT.clear()


_LEFT: list[str] = []  # image IDs a test made that may have lost their tags


def open_session(tarball: Path | None = None) -> contextlib.AbstractContextManager[Session]:
    return Session.open(None, None, None, ui=UI(stdout=io.StringIO(), stderr=io.StringIO()), tarball=tarball)


def build_hello(session: Session) -> BuiltImage:
    [built] = session.build_paths(["./cmd/hello"])
    _LEFT.append(built.published.image_id)
    return built


def change_greeting(module: Path, greeting: str) -> None:
    path = module / GREETING
    path.write_text(path.read_text().replace('"Hello, "', f'"{greeting}, "'))


def present(client: Any, image_id: str) -> bool:
    import docker.errors

    try:
        client.api.inspect_image(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- TarballPublisher -----------------------------------------------------------------------------------

def test_tarball_loads_as_the_image_the_daemon_got(hello: Path, repo: str, docker_client: Any,
                                                   tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    with open_session(tarball=archive) as session:
        built = build_hello(session)
        assert not archive.exists()  # written once, when the session closes
    assert archive.is_file()
    ref, image_id = built.plan.ref, built.published.image_id
    assert ref == f"{repo}/hello:latest"
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()

    docker_client.images.remove(ref, force=True)  # the daemon forgets it: the archive alone must bring it back
    assert not present(docker_client, image_id)
    [loaded] = docker_client.images.load(archive.read_bytes())
    assert loaded.id == image_id  # the same config, so the same image ID as the daemon publish
    assert ref in loaded.tags
    assert run_container(docker_client, ref) == (0, "Hello, world!\n")


# --- PruningPublisher -----------------------------------------------------------------------------------

def test_a_replaced_image_nothing_uses_is_removed_on_prune_not_before(hello: Path, repo: str,
                                                                      docker_client: Any) -> None:
    with open_session() as session:
        first = build_hello(session)
        change_greeting(hello, "Howdy")
        second = build_hello(session)
        old = first.published.image_id
        assert second.published.replaced == (old,)
        assert present(docker_client, old)  # deferred: an old container could still be using it
        assert session.pruner.prune() == [old]
        assert not present(docker_client, old)
        assert present(docker_client, second.published.image_id)
    assert run_container(docker_client, second.plan.ref) == (0, "Howdy, world!\n")


def test_a_replaced_image_is_kept_while_a_container_uses_it(hello: Path, repo: str, docker_client: Any) -> None:
    with open_session() as session:
        first = build_hello(session)
        old = first.published.image_id
        container = docker_client.containers.create(old, network_mode="host")  # created, never started
        try:
            change_greeting(hello, "Howdy")
            second = build_hello(session)
            assert second.published.replaced == (old,)
            assert session.pruner.prune() == []  # the daemon refuses: the container uses it
            assert present(docker_client, old)
        finally:
            container.remove(force=True)
        assert pruning(session).forget(old)  # nothing uses it now
        assert not present(docker_client, old)


def test_a_replaced_image_with_another_tag_is_kept(hello: Path, repo: str, docker_client: Any) -> None:
    with open_session() as session:
        first = build_hello(session)
        old = first.published.image_id
        docker_client.api.tag(old, f"{repo}/kept", tag="mine")
        change_greeting(hello, "Howdy")
        assert build_hello(session).published.replaced == (old,)
        assert session.pruner.prune() == []
    assert present(docker_client, f"{repo}/kept:mine")
    assert docker_client.api.inspect_image(f"{repo}/kept:mine")["Id"] == old


def test_images_without_kodevs_label_are_never_removed(hello: Path, repo: str, docker_client: Any,
                                                       tmp_path: Path) -> None:
    # Someone else's image under the tag kodev is about to use (imported: it has no labels at all).
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("theirs.txt")
        data = b"not kodev's\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    docker_client.api.import_image(src=str(rootfs), repository=f"{repo}/hello", tag="latest")
    theirs = docker_client.api.inspect_image(f"{repo}/hello:latest")["Id"]
    _LEFT.append(theirs)
    with open_session() as session:
        built = build_hello(session)
        assert built.published.replaced == (theirs,)
        assert session.pruner.prune() == []
        assert present(docker_client, theirs)  # dangling now, and nothing uses it: still not kodev's to remove
        assert not pruning(session).forget(theirs)
    assert present(docker_client, theirs)  # not on close either


def pruning(session: Session) -> PruningPublisher:
    """The session's pruner, which `Session.open` makes a `PruningPublisher` (forget is its own)."""
    assert isinstance(session.pruner, PruningPublisher)
    return session.pruner
