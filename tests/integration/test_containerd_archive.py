"""The OCI-layout archive kodev sends to Docker's containerd image store, checked against real containerd.

The dockerd of these tests uses the classic store (Docker 20.10 has no containerd store), so the archive
is imported with `ctr` into the containerd that dockerd runs: the same import and unpack code the
containerd store uses. A slim archive (base and kodata blobs left out) must import where containerd
already holds those layers, and must fail where it does not — proof that it really is slim.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kodev.gobuild import BuildRequest, compile_commands
from kodev.gomod import resolve_commands
from kodev.gotool import find_go
from kodev.image import base
from kodev.image.archive import oci_archive_stream
from kodev.image.assemble import Image, ImageSpec, assemble
from kodev.image.kodata import KODATA_DIR, kodata_layer
from kodev.image.layers import binary_layer
from kodev.platform import Platform
from tests.integration.conftest import REQUIRE_REAL

SOCKET = Path(os.environ.get("KODEV_DOCKERD_DIR", "/tmp/kodev-dockerd")) / "exec" / "containerd" / "containerd.sock"


@pytest.fixture
def ctr(go_binary: str) -> Iterator[list[str]]:
    found = shutil.which("ctr")
    if found is None or not SOCKET.exists():
        message = f"ctr and the private dockerd's containerd socket ({SOCKET})"
        if REQUIRE_REAL:
            pytest.fail(f"{message} are required (KODEV_REQUIRE_REAL=1) but missing", pytrace=False)
        pytest.skip(f"{message} not available")
    yield [found, "-a", str(SOCKET)]


def _image(hello: Path, out: Path) -> Image:
    platform = Platform("linux", os.uname().machine.replace("x86_64", "amd64").replace("aarch64", "arm64"))
    go = find_go(None, platform.go_env())
    command = resolve_commands(go, ["./cmd/hello"], hello)[0]
    binary = compile_commands(go, [BuildRequest(command)], out)[0]
    return assemble(base.static(), kodata_layer(command.dir / KODATA_DIR, hello, 0),
                    binary_layer(binary.path, binary.digest, command.app_name, 0),
                    ImageSpec(command.import_path, command.app_name, platform, 0, {}))


def _import(ctr: list[str], namespace: str, archive: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ctr, "-n", namespace, "images", "import", str(archive)], capture_output=True,
                          text=True, timeout=120, check=False)


def _drop(ctr: list[str], namespace: str, ref: str) -> None:
    subprocess.run([*ctr, "-n", namespace, "images", "rm", ref], capture_output=True, check=False)
    subprocess.run([*ctr, "namespaces", "rm", namespace], capture_output=True, check=False)


def test_slim_oci_archive_imports_only_where_containerd_has_the_layers(hello: Path, tmp_path: Path,
                                                                      ctr: list[str]) -> None:
    ref = f"kodev.test/ctr-{uuid.uuid4().hex[:8]}/hello:latest"
    warm, cold = "kodev-test-warm", "kodev-test-cold"  # fixed: containerd keeps namespaces until GC empties them
    first = _image(hello, tmp_path / "one")
    greeting = hello / "internal" / "greeting" / "greeting.go"
    greeting.write_text(greeting.read_text().replace('"Hello, "', '"Howdy, "'))
    second = _image(hello, tmp_path / "two")
    assert first.diff_ids[:2] == second.diff_ids[:2] and first.diff_ids[2] != second.diff_ids[2]

    full = tmp_path / "full.tar"
    # The first image keeps a tag of its own, as a running container keeps its image: were the slim import
    # to move the only tag, containerd's GC could collect the shared layers' snapshots while it unpacks.
    kept = ref.replace(":latest", ":first")
    full.write_bytes(b"".join(oci_archive_stream(first, [kept])))
    slim = tmp_path / "slim.tar"
    slim.write_bytes(b"".join(oci_archive_stream(second, [ref], frozenset(second.diff_ids[:2]))))
    assert slim.stat().st_size < second.layers[2].size + 64 * 1024  # just the binary layer, config, manifest
    try:
        done = _import(ctr, warm, full)
        assert done.returncode == 0, done.stderr
        done = _import(ctr, warm, slim)
        assert done.returncode == 0, done.stderr
        listed = subprocess.run([*ctr, "-n", warm, "images", "check"], capture_output=True, text=True, check=True)
        line = next(row for row in listed.stdout.splitlines() if row.startswith(ref))
        assert "complete" in line and "true" in line.split()[-1], listed.stdout  # unpacked, all blobs there

        fresh = _import(ctr, cold, slim)
        assert fresh.returncode != 0
        assert second.diff_ids[0].removeprefix("sha256:") in fresh.stderr  # the left-out base layer
    finally:
        for name in (ref, kept):
            _drop(ctr, warm, name)
            _drop(ctr, cold, name)
