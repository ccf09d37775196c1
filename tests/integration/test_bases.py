"""Base images from the daemon, `docker save` archives and OCI layouts; slim loads; the full-archive fallback.

The bases are made here: a root filesystem tarball with a marker file and an /etc/passwd holding a user of
its own, imported into the real daemon (`docker import`), saved from it, and written as an OCI layout by
hand. Everything this module tags lives under kodev.test/ and is removed afterwards.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_container, run_kodev

CUSTOM_UID = 1234
KODATA_ENV = "KO_DATA_PATH=/var/run/ko"
PROBE = """// Command probe reports what the process sees: who it runs as, where, and the base's files and env.
package main

import (
	"fmt"
	"os"
)

func main() {
	wd, _ := os.Getwd()
	marker, err := os.ReadFile("/marker/file")
	fmt.Printf("uid=%d gid=%d\\n", os.Getuid(), os.Getgid())
	fmt.Printf("cwd=%s\\n", wd)
	fmt.Printf("FOO=%s\\n", os.Getenv("FOO"))
	fmt.Printf("KO_DATA_PATH=%s\\n", os.Getenv("KO_DATA_PATH"))
	fmt.Printf("marker=%s err=%v\\n", marker, err)
}
"""


# --- helpers -----------------------------------------------------------------------------------------

def remove_tags(client: Any, prefix: str) -> None:
    """Remove every tag starting with `prefix` (containers of them are force-removed with them)."""
    import docker.errors

    # The low-level list: `client.images.list()` inspects each image and fails when another test run
    # removes one meanwhile.
    for image in client.api.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith(prefix):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    client.images.remove(tag, force=True)


@pytest.fixture
def repo(docker_client: Any) -> Iterator[str]:
    name = f"kodev.test/bases-{uuid.uuid4().hex[:10]}"
    yield name
    remove_tags(docker_client, f"{name}/")


def rootfs_tar(files: dict[str, bytes]) -> bytes:
    """A layer / root filesystem tarball holding `files` (parent directories included)."""
    buffer = io.BytesIO()
    directories = sorted({str(Path(name).parent) for name in files} - {"."})
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def base_files(marker: bytes) -> dict[str, bytes]:
    return {
        "etc/passwd": (b"root:x:0:0:root:/root:/sbin/nologin\n"
                       b"custom:x:1234:1234:custom:/home/custom:/sbin/nologin\n"),
        "etc/group": b"root:x:0:\ncustom:x:1234:\n",
        "marker/file": marker,
    }


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def save(client: Any, ref: str, path: Path) -> Path:
    with open(path, "wb") as handle:
        for chunk in client.images.get(ref).save():
            handle.write(chunk)
    return path


class OciLayout:
    """An OCI image layout written by hand: oci-layout, blobs/sha256/..., index.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "blobs" / "sha256").mkdir(parents=True)
        (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.directory / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(self, arch: str, layer: bytes, config: dict[str, Any]) -> dict[str, Any]:
        """One image (its layer gzip-compressed, as registries store them); its descriptor with platform."""
        document = {"architecture": arch, "os": "linux", "config": config,
                    "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
                    "history": [{"created_by": "kodev tests: rootfs"}]}
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.blob(json.dumps(document).encode(), "application/vnd.oci.image.config.v1+json"),
            "layers": [self.blob(gzip.compress(layer), "application/vnd.oci.image.layer.v1.tar+gzip")],
        }
        descriptor = self.blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
        return {**descriptor, "platform": {"os": "linux", "architecture": arch}}

    def index(self, descriptors: list[dict[str, Any]], nested: bool = False) -> Path:
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": descriptors}
        if nested:  # as `crane pull --format=oci` writes a multi-platform image: index.json -> index -> manifests
            index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                     "manifests": [self.blob(json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")]}
        (self.directory / "index.json").write_text(json.dumps(index))
        return self.directory


def native_arch(client: Any) -> str:
    from kodev.daemon import Daemon

    return Daemon(client, "test").platform().arch


def other_arch(native: str) -> str:
    return "arm64" if native != "arm64" else "amd64"


def write_config(module: Path, repo: str, base: str, extra: str = "") -> None:
    # json.dumps gives a TOML basic string (same escapes) for paths and references.
    (module / "kodev.toml").write_text(f"repo = {json.dumps(repo)}\nbase = {json.dumps(base)}\n{extra}")


def add_probe(module: Path) -> None:
    (module / "cmd" / "probe").mkdir()
    (module / "cmd" / "probe" / "main.go").write_text(PROBE)


def build_ok(module: Path, *args: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    done = run_kodev(["build", *args], module, env)
    assert done.returncode == 0, f"kodev build {args} failed:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout.splitlines(), done.stderr


def build_fails(module: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_kodev(["build", *args], module, env)
    assert done.returncode == 1, f"expected exit 1, got {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert "error:" in done.stderr, done.stderr
    return done.stderr


def file_in(client: Any, image: str, path: str) -> bytes:
    """The content of `path` in a (created, never started) container of `image`."""
    container = client.containers.create(image)
    try:
        stream, _ = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmembers()[0]
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read()


def member_size(client: Any, image: str, path: str) -> int:
    container = client.containers.create(image)
    try:
        stream, _ = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()[0].size


_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def bytes_sent(stderr: str, name: str) -> tuple[float, float]:
    """(low, high) bounds of the bytes the `name` line of kodev build reports as sent (it rounds)."""
    for line in stderr.splitlines():
        found = re.search(r"load [0-9.]+s \(([0-9.]+) (B|kB|MB|GB) sent\)", line)
        if found and line.strip().startswith(name):
            value, unit = float(found.group(1)), _UNITS[found.group(2)]
            slack = 0 if unit == 1 else 0.05 * unit
            return value * unit - slack, value * unit + slack
    raise AssertionError(f"no load line for {name} in:\n{stderr}")


# --- the base made in the test -----------------------------------------------------------------------

@dataclass(frozen=True)
class MadeBase:
    ref: str
    marker: bytes
    layer: bytes  # the root filesystem tarball, uncompressed
    archive: Path  # `docker save` of ref

    @property
    def config(self) -> dict[str, Any]:
        return {"User": "custom", "Env": ["FOO=bar"], "WorkingDir": "/work", "Labels": {"org.example.base": "made"},
                "ExposedPorts": {"8080/tcp": {}}, "Cmd": ["/bin/sh"]}


@pytest.fixture(scope="module")
def made_base(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MadeBase]:
    directory = tmp_path_factory.mktemp("base")
    suffix = uuid.uuid4().hex[:10]
    repository = f"kodev.test/base-{suffix}"
    marker = f"marker of base {suffix}\n".encode()
    layer = rootfs_tar(base_files(marker))
    rootfs = directory / "rootfs.tar"
    rootfs.write_bytes(layer)
    docker_client.api.import_image(src=str(rootfs), repository=repository, tag="1",
                                   changes=["ENV FOO=bar", "WORKDIR /work", "USER custom",
                                            "LABEL org.example.base=made", "EXPOSE 8080", 'CMD ["/bin/sh"]'])
    ref = f"{repository}:1"
    try:
        archive = save(docker_client, ref, directory / "base-docker-save.tar")
        yield MadeBase(ref=ref, marker=marker, layer=layer, archive=archive)
    finally:
        remove_tags(docker_client, f"{repository}:")


def oci_base(made: MadeBase, directory: Path, arch: str) -> Path:
    """The made base as an OCI layout (its layer gzip-compressed)."""
    layout = OciLayout(directory)
    return layout.index([layout.image(arch, made.layer, made.config)])


# --- a base from the daemon, a docker save archive, an OCI layout ---------------------------------------

@pytest.mark.parametrize("source", ["daemon", "docker-archive", "oci"])
def test_base_carries_its_files_user_env_and_workdir(source: str, hello: Path, repo: str, made_base: MadeBase,
                                                     docker_client: Any, tmp_path: Path) -> None:
    if source == "daemon":
        base = made_base.ref
    elif source == "docker-archive":
        base = f"docker-archive:{made_base.archive}"
    else:
        base = f"oci:{oci_base(made_base, tmp_path / 'oci', native_arch(docker_client))}"
    write_config(hello, repo, base)
    add_probe(hello)
    refs, _ = build_ok(hello, "./cmd/hello", "./cmd/probe")
    assert refs == [f"{repo}/hello:latest", f"{repo}/probe:latest"]
    hello_ref, probe_ref = refs

    inspected = docker_client.api.inspect_image(hello_ref)
    config = inspected["Config"]
    assert config["User"] == "custom"
    assert config["WorkingDir"] == "/work"
    env = config["Env"]
    assert "FOO=bar" in env
    assert KODATA_ENV in env
    paths = [item for item in env if item.startswith("PATH=")]
    assert len(paths) == 1 and paths[0].split(":")[-1].endswith("/ko-app"), env
    assert config["Entrypoint"] == ["/ko-app/hello"]
    assert not config.get("Cmd"), "the base's Cmd would become the app's arguments"
    assert config["Labels"]["org.example.base"] == "made"
    assert config["Labels"]["dev.kodev.command"] == "example.com/hello/cmd/hello"
    assert "8080/tcp" in (config.get("ExposedPorts") or {})
    layers = inspected["RootFS"]["Layers"]
    assert len(layers) == 3 and layers[0] == sha(made_base.layer), layers  # base, kodata, binary

    assert file_in(docker_client, hello_ref, "/marker/file") == made_base.marker
    assert file_in(docker_client, hello_ref, "/etc/passwd") == base_files(made_base.marker)["etc/passwd"]

    code, output = run_container(docker_client, hello_ref, "world")  # as the base's user, `custom`
    assert (code, output) == (0, "Hello, world!\n")

    code, output = run_container(docker_client, probe_ref)
    assert code == 0, output
    assert f"uid={CUSTOM_UID} gid={CUSTOM_UID}" in output
    assert "cwd=/work" in output
    assert "FOO=bar" in output
    assert "KO_DATA_PATH=/var/run/ko" in output
    assert f"marker={made_base.marker.decode()}" in output


def test_relative_archive_path_is_relative_to_the_config_file(hello: Path, repo: str, made_base: MadeBase,
                                                             docker_client: Any) -> None:
    (hello / "bases").mkdir()
    shutil.copy(made_base.archive, hello / "bases" / "base.tar")
    write_config(hello, repo, "docker-archive:bases/base.tar")
    done = run_kodev(["build", "../cmd/hello"], hello / "internal")  # run from elsewhere in the module
    assert done.returncode == 0, done.stderr
    assert file_in(docker_client, done.stdout.split()[0], "/marker/file") == made_base.marker


def test_a_tag_that_moves_to_another_image_is_followed(hello: Path, repo: str, docker_client: Any,
                                                       tmp_path: Path) -> None:
    repository = f"kodev.test/moving-{uuid.uuid4().hex[:10]}"
    ids = []
    try:
        for generation in ("first", "second"):
            marker = f"{generation} generation\n".encode()
            rootfs = tmp_path / f"{generation}.tar"
            rootfs.write_bytes(rootfs_tar({"marker/file": marker}))
            docker_client.api.import_image(src=str(rootfs), repository=repository, tag="1")
            ids.append(docker_client.api.inspect_image(f"{repository}:1")["Id"])
            write_config(hello, repo, f"{repository}:1")
            refs, _ = build_ok(hello, "./cmd/hello")
            assert file_in(docker_client, refs[0], "/marker/file") == marker, f"{generation} base not used"
    finally:
        remove_tags(docker_client, f"{repository}:")
        remove_tags(docker_client, f"{repo}/")
        for image_id in ids:
            with contextlib.suppress(Exception):
                docker_client.images.remove(image_id, force=True)


@pytest.mark.parametrize("nested", [False, True], ids=["index", "nested-index"])
def test_index_base_picks_the_daemons_platform(nested: bool, hello: Path, repo: str, docker_client: Any,
                                               tmp_path: Path) -> None:
    native = native_arch(docker_client)
    other = other_arch(native)
    layout = OciLayout(tmp_path / "multi")
    config = {"Env": ["PATH=/usr/bin:/bin", "FOO=multi"]}
    descriptors = [layout.image(arch, rootfs_tar({"marker/file": f"marker for {arch}\n".encode()}), config)
                   for arch in (other, native)]  # the daemon's platform second: not merely the first entry
    directory = layout.index(descriptors, nested=nested)
    write_config(hello, repo, f"oci:{directory}")
    refs, _ = build_ok(hello, "./cmd/hello")
    assert file_in(docker_client, refs[0], "/marker/file") == f"marker for {native}\n".encode()
    inspected = docker_client.api.inspect_image(refs[0])
    assert inspected["Architecture"] == native
    assert "PATH=/usr/bin:/bin:/ko-app" in inspected["Config"]["Env"]
    assert run_container(docker_client, refs[0]) == (0, "Hello, world!\n")


# --- slim loads with a large base -------------------------------------------------------------------------

class _RandomReader:
    """`size` bytes of os.urandom, read in chunks (never all in memory)."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= size
        return os.urandom(size)


LARGE = 64 * 1024 * 1024  # ~30 times the binary layer: what a rebuild must not send again


def test_large_base_is_sent_once_then_rebuilds_send_about_the_binary(
        hello: Path, repo: str, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "kodev-cache"  # this test's own, so the 64 MB copy is deleted with it
    monkeypatch.setenv("KODEV_CACHE_DIR", str(cache))
    big_ref = f"kodev.test/big-{uuid.uuid4().hex[:10]}:1"
    rootfs = tmp_path / "big-rootfs.tar"
    archive = tmp_path / "big-docker-save.tar"
    try:
        with tarfile.TarFile(rootfs, "w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:
            info = tarfile.TarInfo("big/random.bin")
            info.size = LARGE
            info.mode = 0o644
            tar.addfile(info, _RandomReader(LARGE))
        docker_client.api.import_image(src=str(rootfs), repository=big_ref.split(":")[0], tag="1")
        rootfs.unlink()

        # A base the daemon has: even the first build leaves it out of the archive.
        write_config(hello, repo, big_ref)
        refs, stderr = build_ok(hello, "./cmd/hello")
        low, high = bytes_sent(stderr, "hello")
        assert high < 20_000_000, f"the base was in the daemon, yet kodev sent {low:.0f}+ bytes:\n{stderr}"
        assert run_container(docker_client, refs[0]) == (0, "Hello, world!\n")

        # A base the daemon has never seen (a docker save archive of it, after the daemon dropped it):
        # the first build sends it whole.
        save(docker_client, big_ref, archive)
        remove_tags(docker_client, big_ref)
        remove_tags(docker_client, f"{repo}/")
        other_repo = f"{repo}/second"
        write_config(hello, other_repo, f"docker-archive:{archive}")
        refs, stderr = build_ok(hello, "./cmd/hello")
        low, high = bytes_sent(stderr, "hello")
        assert low >= LARGE, f"the first build on a never-seen base sent only {high:.0f} bytes:\n{stderr}"
        assert run_container(docker_client, refs[0]) == (0, "Hello, world!\n")

        # A one-line change: the rebuild sends about the binary layer, not the base.
        greeting = hello / "internal" / "greeting" / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"Hello, "', '"Howdy, "'))
        refs, stderr = build_ok(hello, "./cmd/hello")
        top = docker_client.api.inspect_image(refs[0])["RootFS"]["Layers"][-1]
        top_file = cache / "layers" / f"{top.removeprefix('sha256:')}.tar"
        top_size = top_file.stat().st_size if top_file.exists() else member_size(docker_client, refs[0],
                                                                                  "/ko-app/hello") + 12_288
        low, high = bytes_sent(stderr, "hello")
        assert high < 1.2 * top_size, f"rebuild sent {low:.0f}-{high:.0f} bytes for a {top_size} byte layer"
        assert run_container(docker_client, refs[0], "there") == (0, "Howdy, there!\n")
        layers = docker_client.api.inspect_image(refs[0])["RootFS"]["Layers"]
        assert len(layers) == 3
    finally:
        rootfs.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
        remove_tags(docker_client, big_ref)
        shutil.rmtree(cache, ignore_errors=True)


# --- falling back to the full archive --------------------------------------------------------------------

def _is_slim(archive: bytes) -> bool:
    """Whether a docker-save archive lists layers whose files it leaves out."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = set(tar.getnames())
        manifest_file = tar.extractfile("manifest.json")
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
    return any(layer not in names for entry in manifest for layer in entry["Layers"])


def test_rejected_slim_archive_falls_back_to_the_full_one_and_remembers(
        hello: Path, repo: str, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import docker.errors

    from kodev.daemon import connect
    from kodev.publish.daemon import DaemonPublisher
    from kodev.session import Session
    from kodev.ui import UI

    cache = tmp_path / "kodev-cache"  # the remembered fallback lives here, not in the session's cache
    monkeypatch.setenv("KODEV_CACHE_DIR", str(cache))
    monkeypatch.chdir(hello)
    write_config(hello, repo, "static")
    greeting = hello / "internal" / "greeting" / "greeting.go"
    ref = f"{repo}/hello:latest"
    seen: list[bool] = []

    def recording(real: Any, reject_first_slim: bool) -> Any:
        # Test double: the real dockerd here always accepts partial archives, and cannot be made to
        # refuse them. This stands in for a daemon that does (Podman rejects partial archives): the first
        # slim archive is answered with an API error; everything else goes through to the real daemon.
        def load_image(data: Any, *args: Any, **kwargs: Any) -> Any:
            body = b"".join(data)
            slim = _is_slim(body)
            seen.append(slim)
            if slim and reject_first_slim and seen.count(True) == 1:
                raise docker.errors.APIError("500 Server Error", explanation="partial archives are not supported")
            return real(body, *args, **kwargs)
        return load_image

    ui = UI(stdout=io.StringIO(), stderr=io.StringIO())
    with Session.open(None, None, None, ui=ui) as session:
        session.build_paths(["./cmd/hello"])  # the tag now exists: the next load can be slim
        monkeypatch.setattr(session.daemon.api, "load_image", recording(session.daemon.api.load_image, True))

        greeting.write_text(greeting.read_text().replace('"Hello, "', '"Hi there, "'))
        second = session.build_paths(["./cmd/hello"])[0]
        assert seen == [True, False], "expected a slim attempt, rejected, then the full archive"
        assert second.published.slim is False
        assert second.published.bytes_sent >= sum(layer.size for layer in second.image.layers)
        assert docker_client.api.inspect_image(ref)["RootFS"]["Layers"] == second.image.diff_ids
        assert run_container(docker_client, ref) == (0, "Hi there, world!\n")

        greeting.write_text(greeting.read_text().replace('"Hi there, "', '"Hey, "'))
        third = session.build_paths(["./cmd/hello"])[0]
        assert seen == [True, False, False], "after a rejection the same Daemon must send full archives"
        assert third.published.slim is False
        assert run_container(docker_client, ref) == (0, "Hey, world!\n")
        image = third.image

    remembered = list((cache / "daemons").glob("*"))
    assert remembered, "the fallback was not recorded in KODEV_CACHE_DIR"

    # A new Daemon for the same endpoint (a later kodev process) sends the full archive straight away.
    seen.clear()
    later = connect()
    try:
        monkeypatch.setattr(later.api, "load_image", recording(later.api.load_image, False))
        result = DaemonPublisher(later).publish(image, ref)
        assert seen == [False] and result.slim is False
        assert result.bytes_sent >= sum(layer.size for layer in image.layers)
    finally:
        later.client.close()

    # Control: without the record, the same load is slim (so the checks above could have failed).
    for path in remembered:
        path.unlink()
    seen.clear()
    fresh = connect()
    try:
        monkeypatch.setattr(fresh.api, "load_image", recording(fresh.api.load_image, False))
        result = DaemonPublisher(fresh).publish(image, ref)
        assert seen == [True] and result.slim is True
        assert result.bytes_sent < sum(layer.size for layer in image.layers)
    finally:
        fresh.client.close()


# --- bad input ----------------------------------------------------------------------------------------------

def test_unknown_reference_names_it_and_says_the_pull_failed(hello: Path, repo: str) -> None:
    missing = f"kodev.test/does-not-exist-{uuid.uuid4().hex[:8]}:1"
    write_config(hello, repo, missing)
    stderr = build_fails(hello, "./cmd/hello")
    assert missing in stderr
    assert "pull" in stderr and "failed" in stderr


@pytest.mark.parametrize("per_command", [False, True], ids=["top-level", "per-command"])
def test_invalid_reference_names_the_key(hello: Path, repo: str, per_command: bool) -> None:
    if per_command:
        (hello / "kodev.toml").write_text(f'repo = "{repo}"\n[commands."./cmd/hello"]\nbase = "Not/Valid:Ref!"\n')
    else:
        write_config(hello, repo, "Not/Valid:Ref!")
    stderr = build_fails(hello, "./cmd/hello")
    assert "Not/Valid:Ref!" in stderr
    key = 'commands."./cmd/hello".base' if per_command else "kodev.toml: base"
    assert key in stderr, stderr


@pytest.mark.parametrize("damage", ["random-bytes", "truncated-half", "truncated-tail"])
def test_corrupt_docker_archive(damage: str, hello: Path, repo: str, made_base: MadeBase, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.tar"
    real = made_base.archive.read_bytes()
    path.write_bytes({
        "random-bytes": os.urandom(64 * 1024),
        "truncated-half": real[: len(real) // 2],
        "truncated-tail": real[: len(real) - 3000],
    }[damage])
    write_config(hello, repo, f"docker-archive:{path}")
    stderr = build_fails(hello, "./cmd/hello")
    assert str(path) in stderr


def test_missing_docker_archive(hello: Path, repo: str, tmp_path: Path) -> None:
    write_config(hello, repo, f"docker-archive:{tmp_path / 'nope.tar'}")
    stderr = build_fails(hello, "./cmd/hello")
    assert "nope.tar" in stderr


def test_oci_layout_without_the_target_platform_lists_its_platforms(hello: Path, repo: str, docker_client: Any,
                                                                    tmp_path: Path) -> None:
    native = native_arch(docker_client)
    others = [arch for arch in ("arm64", "s390x", "amd64") if arch != native][:2]
    layout = OciLayout(tmp_path / "foreign")
    directory = layout.index([layout.image(arch, rootfs_tar({"marker/file": arch.encode()}), {})
                              for arch in others])
    write_config(hello, repo, f"oci:{directory}")
    stderr = build_fails(hello, "./cmd/hello")
    for arch in others:
        assert f"linux/{arch}" in stderr
    assert f"linux/{native}" in stderr  # what it was looking for


@pytest.mark.parametrize("what", ["file", "missing"])
def test_oci_path_that_is_not_a_directory(what: str, hello: Path, repo: str, tmp_path: Path) -> None:
    path = tmp_path / "layout.tar"
    if what == "file":
        path.write_bytes(b"not a layout")
    write_config(hello, repo, f"oci:{path}")
    stderr = build_fails(hello, "./cmd/hello")
    assert str(path) in stderr
    assert "not a directory" in stderr


def test_pull_flag_pulls_even_when_the_daemon_has_the_image(hello: Path, repo: str, made_base: MadeBase) -> None:
    write_config(hello, repo, made_base.ref)
    stderr = build_fails(hello, "--pull", "./cmd/hello")  # no registry is reachable: the pull must fail
    assert made_base.ref in stderr
    assert "pull" in stderr and "failed" in stderr


def test_pull_error_does_not_claim_a_present_image_is_missing(hello: Path, repo: str, made_base: MadeBase,
                                                              docker_client: Any) -> None:
    assert docker_client.api.inspect_image(made_base.ref)  # the daemon has it
    write_config(hello, repo, made_base.ref)
    stderr = build_fails(hello, "--pull", "./cmd/hello")
    assert "not in the Docker daemon" not in stderr, f"the error says the image is missing, but it is not:\n{stderr}"
