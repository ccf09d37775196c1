"""Fixtures for tests against the real parts: the `go` on PATH and the Docker daemon kodev would use.

Without them these tests skip on a developer's machine, but with KODEV_REQUIRE_REAL=1 (set by .ci/run
and by scripts/test under CI) a missing toolchain or daemon is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.examples import copy_example
from tests.integration.modules import Module, clean_daemon, make_module

if TYPE_CHECKING:  # private_daemon.py imports this file
    from tests.integration.private_daemon import PrivateDaemon

REQUIRE_REAL = os.environ.get("KODEV_REQUIRE_REAL") == "1"


def _missing(what: str) -> None:
    if REQUIRE_REAL:
        pytest.fail(f"{what} is required (KODEV_REQUIRE_REAL=1) but missing", pytrace=False)
    pytest.skip(f"{what} not available")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


# How a binary-only change reaches a running service: swapped in place under kodev's supervisor (the default,
# what users run) or a recreated container (KODEV_SWAP=0, the variant).
DELIVERIES = ("swap", "recreate")


@pytest.fixture(params=DELIVERIES)
def delivery(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs twice: with kodev's default, 'swap', and with 'recreate' (KODEV_SWAP=0, in the environment
    every kodev the test starts inherits). For scenarios whose outcome differs between the two."""
    if request.param == "recreate":
        monkeypatch.setenv("KODEV_SWAP", "0")
    return str(request.param)


@pytest.fixture
def recreate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recreate containers on every change (KODEV_SWAP=0): for a test about recreating itself."""
    monkeypatch.setenv("KODEV_SWAP", "0")


@pytest.fixture(scope="session")
def go_binary() -> str:
    found = shutil.which(os.environ.get("KODEV_GO", "go"))
    if found is None:
        _missing("a Go toolchain (`go` on PATH)")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    from kodev.daemon import connect
    from kodev.errors import DaemonError

    try:
        daemon = connect()
    except DaemonError as exc:
        _missing(f"a Docker daemon ({exc})")
        raise
    yield daemon.client
    daemon.client.close()


@pytest.fixture
def hello(tmp_path: Path, go_binary: str, docker_client: Any) -> Path:
    """A private copy of examples/hello as committed (symlinks kept as symlinks): edits a user made to the
    example, as README's Quick start invites, never reach the tests."""
    return copy_example("hello", tmp_path / "hello")


def run_kodev(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
              ) -> subprocess.CompletedProcess[str]:
    """`kodev ARGS` as a user runs it: a separate process, its own stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "kodev", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


def run_container(client: Any, image: str, *args: str, **kwargs: Any) -> tuple[int, str]:
    """Run `image` to completion on the host network; its exit code and combined output."""
    container = client.containers.run(image, list(args) or None, detach=True, network_mode="host", **kwargs)
    try:
        status = container.wait(timeout=60)
        return int(status["StatusCode"]), container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.fixture
def repo(docker_client: Any) -> Iterator[str]:
    """A repository of this test's own; every image tagged under it is removed afterwards (and nothing else)."""
    import contextlib
    import uuid

    import docker.errors

    name = f"kodev.test/{uuid.uuid4().hex[:12]}"
    yield name
    for image in docker_client.api.images():  # one call: images.list() races with others' removals
        for tag in image.get("RepoTags") or []:
            if tag.startswith(f"{name}/"):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    docker_client.api.remove_image(tag, force=True)


# --- a module of the test's own (tests/integration/modules.py) ----------------------------------------------

@pytest.fixture
def mod(hello: Path, docker_client: Any) -> Iterator[Module]:
    """examples/hello renamed for this test, on the shared daemon; its containers and images removed after."""
    module = make_module(hello, docker_client)
    try:
        yield module
    finally:
        clean_daemon(module)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    """A kodev cache of this test's own (KODEV_CACHE_DIR), deleted afterwards: layers can be big."""
    path = tmp_path / "kodev-cache"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def private_daemon() -> Iterator[PrivateDaemon]:
    """A dockerd of the test file's own (overlay2, no bridge, no iptables), to stop and start at will."""
    from tests.integration.private_daemon import private_dockerd

    with private_dockerd("kd-") as daemon:
        yield daemon


@pytest.fixture
def private_mod(hello: Path, private_daemon: PrivateDaemon) -> Iterator[Module]:
    """Like `mod`, on the private daemon (started again afterwards if the test left it stopped)."""
    module = make_module(hello, private_daemon.client)
    try:
        yield module
    finally:
        if private_daemon.process is None or private_daemon.process.poll() is not None:
            private_daemon.start()
        module.client = private_daemon.client
        clean_daemon(module)


# The real cluster of issue 24 (tests/kube): a session fixture, registered here for every integration test.
from tests.kube.fixture import kube_cluster  # noqa: E402,F401
