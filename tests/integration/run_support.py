"""What the test_run_*.py files (and test_swap.py) share: a daemon namespace of the test's own (`ctx`), the
examples/hello copy and a printenv module building into it, and `kodev run --json` and `kodev build --json`
run to their end and read through their events (json_events.finished).

Containers use the host network and listen on 127.0.0.1 only. Every test builds into a repository of its own
(`kodev.test/run-<random>`, via kodev.toml) and names its containers `kodevtest-<random>-...`, so tests running
in parallel (or other sessions on the same daemon) never share an image tag or a container name; all of them
are removed afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_kodev
from tests.integration.json_events import Finished, finished
from tests.integration.process import KodevProcess, wait_for_page

PRINTENV = """package main

import (
\t"fmt"
\t"os"
\t"strings"
)

// Prints NAME=value for each NAME, file:PATH=content of PATH, write:PATH=ok|ERR.
func main() {
\tfor _, arg := range os.Args[1:] {
\t\tswitch {
\t\tcase strings.HasPrefix(arg, "file:"):
\t\t\tdata, err := os.ReadFile(strings.TrimPrefix(arg, "file:"))
\t\t\tif err != nil {
\t\t\t\tfmt.Printf("%s=ERR %v\\n", arg, err)
\t\t\t\tcontinue
\t\t\t}
\t\t\tfmt.Printf("%s=%s\\n", arg, strings.TrimSpace(string(data)))
\t\tcase strings.HasPrefix(arg, "write:"):
\t\t\tif err := os.WriteFile(strings.TrimPrefix(arg, "write:"), []byte("x"), 0o644); err != nil {
\t\t\t\tfmt.Printf("%s=ERR\\n", arg)
\t\t\t} else {
\t\t\t\tfmt.Printf("%s=ok\\n", arg)
\t\t\t}
\t\tdefault:
\t\t\tfmt.Printf("%s=%s\\n", arg, os.Getenv(arg))
\t\t}
\t}
}
"""


@dataclass
class Ctx:
    client: Any
    prefix: str
    repo: str

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def ref(self, command: str) -> str:
        return f"{self.repo}/{command}:latest"

    def container(self, name_or_id: str) -> Any | None:
        import docker.errors

        try:
            return self.client.containers.get(name_or_id)
        except docker.errors.NotFound:
            return None


@pytest.fixture
def ctx(docker_client: Any) -> Iterator[Ctx]:
    import docker.errors

    token = uuid.uuid4().hex[:10]
    context = Ctx(docker_client, f"kodevtest-{token}", f"kodev.test/run-{token}")
    try:
        yield context
    finally:
        # The raw API lists: the high-level ones inspect each item and fail when another session on the
        # same daemon removes one meanwhile.
        for container in docker_client.api.containers(all=True, filters={"name": context.prefix}):
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.remove_container(container["Id"], force=True)
        for image in docker_client.api.images():
            for tag in image.get("RepoTags") or ():
                if tag.startswith(context.repo + "/"):
                    with contextlib.suppress(docker.errors.APIError):
                        docker_client.api.remove_image(tag, force=True)


@pytest.fixture
def module(hello: Path, ctx: Ctx) -> Path:
    """The examples/hello copy, building into this test's own repository."""
    (hello / "kodev.toml").write_text(f'repo = "{ctx.repo}"\n')
    return hello


@pytest.fixture
def envtest(tmp_path: Path, go_binary: str, ctx: Ctx) -> Path:
    """A tiny standard-library module whose one command prints environment variables and files."""
    root = tmp_path / "envtest"
    (root / "cmd" / "printenv").mkdir(parents=True)
    (root / "go.mod").write_text("module example.com/envtest\n\ngo 1.22\n")
    (root / "cmd" / "printenv" / "main.go").write_text(PRINTENV)
    (root / "kodev.toml").write_text(f'repo = "{ctx.repo}"\n')
    return root


def logs(done: Finished, stream: str | None = None) -> list[str]:
    """The lines the container wrote (its `service.log` events; only `stream`'s, when given)."""
    return [e["line"] for e in done.all("service.log") if stream is None or e["stream"] == stream]


def kodev_run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Finished:
    """`kodev run --json ARGS` to its end: its exit code is its `exit` event's, its last (json_events.finished);
    nothing on stderr (there would be only Python's last words)."""
    return _quiet(finished(run_kodev(["run", "--json", *args], cwd, env, timeout=90)))


def kodev_build(args: list[str], cwd: Path) -> Finished:
    return _quiet(finished(run_kodev(["build", "--json", *args], cwd)))


def _quiet(done: Finished) -> Finished:
    assert done.stderr == "", f"with --json, stderr stays empty\n{done.output()}"
    return done


def assert_user_error(done: Finished, *culprits: str) -> None:
    """kodev refused: exit code 1 and one error that ends it, naming every culprit; no Python traceback."""
    assert done.returncode == 1, f"exit code {done.returncode}\n{done.output()}"
    assert "Traceback" not in done.stderr, done.stderr
    message = done.error()["message"]
    for culprit in culprits:
        assert culprit in message, f"{culprit!r} not named in:\n{message}"


def page(proc: KodevProcess, url: str, text: str, timeout: float = 60) -> str:
    """wait_for_page, with kodev's output in the failure message."""
    try:
        return wait_for_page(url, text, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{proc.output()}") from None


def server(ctx: Ctx, name: str, port: int, *extra: str) -> list[str]:
    """`kodev run --json` of the example server on the host network, listening on 127.0.0.1:`port`."""
    return ["run", "--json", "--network", "host", "--name", ctx.name(name), *extra, "./cmd/server", "--",
            "-addr", f"127.0.0.1:{port}"]
