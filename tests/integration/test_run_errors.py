"""`kodev run --json` against a real Go and a real dockerd, refusing: a name a foreign container holds, bad
flags, a bad container name, a missing env file, a host port in use. Each is one `error` event that ends
kodev (exit code 1) naming the culprit, no container output, nothing left (tests/integration/run_support.py)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import _missing
from tests.integration.run_support import (  # noqa: F401 - fixtures
    Ctx,
    assert_user_error,
    ctx,
    kodev_build,
    kodev_run,
    module,
)


@pytest.mark.parametrize("watch", [False, True])
def test_name_taken_by_a_foreign_container(module: Path, ctx: Ctx, watch: bool) -> None:  # noqa: F811
    import docker.errors

    built = kodev_build(["./cmd/hello"], module)
    assert built.returncode == 0, built.output()
    taken = ctx.name("taken")
    foreign = ctx.client.containers.create(ctx.ref("hello"), ["-exit", "0"], name=taken, network_mode="host",
                                           labels={"owner": "someone-else"})
    try:
        before = foreign.attrs
        done = kodev_run(["--name", taken, *(["--watch"] if watch else []), "./cmd/hello", "--", "-exit", "0"],
                         module)
        assert_user_error(done, taken)
        assert done.all("service.log") == [], done.output()
        foreign.reload()
        assert foreign.id == before["Id"]
        assert foreign.status == "created"
        assert foreign.attrs["State"]["StartedAt"] == before["State"]["StartedAt"]
        assert foreign.labels.get("owner") == "someone-else"
        assert "dev.kodev.managed" not in foreign.labels
    finally:
        with contextlib.suppress(docker.errors.APIError):
            foreign.remove(force=True)


@pytest.mark.parametrize(("flag", "spec"), [("-p", "notaport"), ("-v", "nocolon"), ("-e", "=x"),
                                            ("--publish", "127.0.0.1:70000:80")])
def test_bad_flag_is_a_clear_error(module: Path, ctx: Ctx, flag: str, spec: str) -> None:  # noqa: F811
    name = ctx.name("bad")
    done = kodev_run(["--name", name, flag, spec, "./cmd/hello"], module)
    assert_user_error(done, spec)
    assert done.all("service.log") == [], done.output()
    assert ctx.container(name) is None


def test_bad_container_name_is_a_clear_error(module: Path, ctx: Ctx) -> None:  # noqa: F811
    done = kodev_run(["--name", "bad name!", "./cmd/hello"], module)
    assert_user_error(done, "bad name!")


def test_missing_env_file_is_a_clear_error(module: Path, ctx: Ctx) -> None:  # noqa: F811
    done = kodev_run(["--name", ctx.name("nofile"), "--env-file", "missing.env", "./cmd/hello"], module)
    assert_user_error(done, "missing.env")
    assert ctx.container(ctx.name("nofile")) is None


def test_host_port_in_use(module: Path, ctx: Ctx) -> None:  # noqa: F811
    import docker.errors

    # Publishing needs a bridge network. The test daemon runs with --bridge=none, where the default network
    # silently drops -p (docker run does the same), so the container joins a user-defined bridge network.
    try:
        network = ctx.client.networks.create(ctx.name("net"), driver="bridge")
    except docker.errors.APIError as exc:
        _missing(f"a daemon that can create a bridge network ({exc.explanation or exc})")
        raise
    name = ctx.name("busy")
    try:
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            port = blocker.getsockname()[1]
            try:
                done = kodev_run(["--name", name, "--network", network.name, "-p", f"127.0.0.1:{port}:8080",
                                  "./cmd/server", "--", "-addr", "0.0.0.0:8080"], module)
            except subprocess.TimeoutExpired:
                pytest.fail(f"kodev run kept running although 127.0.0.1:{port} is taken")
            assert_user_error(done, name, f"127.0.0.1:{port}", "already in use")
            assert done.all("service.log") == [], done.output()
            assert ctx.container(name) is None, "the container that could not start was left behind"
            with socket.socket() as probe:  # our listener still owns the port
                probe.settimeout(2)
                probe.connect(("127.0.0.1", port))
    finally:
        with contextlib.suppress(docker.errors.APIError):
            ctx.client.api.remove_container(name, force=True)
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
