"""`kodev resolve -f compose.yaml`, run as a user runs it, checked by the real Compose binary.

`kodev resolve` has no `--json` (its stdout is the compose file): what it did is read from its results, and
its errors from the one `error:` paragraph it writes, for the service, path and file they name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kodev.compose import ComposeCLI
from tests.integration.compose_support import Stack, compose_cli, stack  # noqa: F401 - fixtures
from tests.integration.conftest import run_kodev


def test_resolve_prints_a_compose_file_compose_accepts(stack: Stack, compose_cli: ComposeCLI,  # noqa: F811
                                                       docker_client: Any) -> None:
    done = run_kodev(["resolve", "-f", "compose.yaml", "-p", stack.name], cwd=stack.dir)
    assert done.returncode == 0, done.stderr
    assert "ko://" not in done.stdout
    resolved = yaml.safe_load(done.stdout)
    assert resolved["name"] == stack.name
    services = resolved["services"]
    assert services["api"]["image"] == "kodev.local/api:latest"
    assert services["worker"]["image"] == "kodev.local/worker:latest"
    assert "image" not in services["store"] and services["store"]["build"]["context"] == str(stack.dir / "store")
    assert services["api"]["command"] == ["-addr", f"127.0.0.1:{stack.ports['api']}"]  # Compose interpolated
    for service in ("api", "worker"):
        labels = docker_client.images.get(services[service]["image"]).labels
        assert labels["dev.kodev.command"] == f"example.com/stack/cmd/{service}"

    # `docker compose -f - config` accepts it, from anywhere, and reads the same project back.
    again = compose_cli.run(["-f", "-", "config", "--format", "json"], input=done.stdout, cwd=stack.dir.parent)
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load(again.stdout)["services"]["api"]["image"] == "kodev.local/api:latest"


def _recording_go(tmp_path: Path, go_binary: str) -> tuple[Path, Path]:
    """A `go` that runs the real one, first writing the arguments of each `go build` as a line of a log."""
    log, go = tmp_path / "go-builds.log", tmp_path / "go"
    go.write_text(f'#!/bin/sh\n[ "$1" = build ] && echo "$*" >> "{log}"\nexec {go_binary} "$@"\n')
    go.chmod(0o755)
    return go, log


def test_an_image_that_is_kodevs_own_tag_is_built_too(stack: Stack, docker_client: Any, tmp_path: Path,  # noqa: F811
                                                      go_binary: str) -> None:
    compose = stack.compose_file.read_text()
    stack.compose_file.write_text(compose.replace("ko://example.com/stack/cmd/worker", "kodev.local/worker"))
    go, log = _recording_go(tmp_path, go_binary)
    done = run_kodev(["resolve", "-f", "compose.yaml"], cwd=stack.dir, env={"KODEV_GO": str(go)})
    assert done.returncode == 0, done.stderr
    builds = [line.split() for line in log.read_text().splitlines() if "example.com/stack/" in line]
    assert len(builds) == 1, builds  # one `go build` for both commands
    assert {"example.com/stack/cmd/api", "example.com/stack/cmd/worker"} <= set(builds[0]), builds
    assert yaml.safe_load(done.stdout)["services"]["worker"]["image"] == "kodev.local/worker:latest"
    assert yaml.safe_load(done.stdout)["name"] == "stack"  # Compose's default: the directory name


def test_a_ko_path_that_is_not_a_command_names_the_service(stack: Stack) -> None:  # noqa: F811
    compose = stack.compose_file.read_text()
    stack.compose_file.write_text(compose.replace("ko://./cmd/api", "ko://./internal/quotes"))
    done = run_kodev(["resolve", "-f", "compose.yaml"], cwd=stack.dir)
    assert done.returncode == 1
    assert "service 'api' (image ko://./internal/quotes, relative to" in done.stderr
    assert "not `package main`" in done.stderr and "Traceback" not in done.stderr

    stack.compose_file.write_text(compose.replace("ko://./cmd/api", "ko://example.com/elsewhere/cmd/api"))
    done = run_kodev(["resolve", "-f", "compose.yaml"], cwd=stack.dir)
    assert done.returncode == 1
    assert "service 'api' (image ko://example.com/elsewhere/cmd/api)" in done.stderr


def test_an_invalid_compose_file_is_reported_in_composes_words(stack: Stack) -> None:  # noqa: F811
    broken = stack.dir / "broken.yaml"
    broken.write_text("services:\n  api:\n    imagee: ko://./cmd/api\n")
    done = run_kodev(["resolve", "-f", "compose.yaml", "-f", "broken.yaml"], cwd=stack.dir)
    assert done.returncode == 1
    assert "additional properties 'imagee' not allowed" in done.stderr and str(broken) in done.stderr
    assert "Traceback" not in done.stderr
