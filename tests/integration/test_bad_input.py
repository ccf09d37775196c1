"""What goes wrong around kodev, against the real parts: a daemon that goes away during a slim load, a daemon
that lost layers kodev remembered, Compose that never answers, `go` that disappears, a kodev.toml path that
names no command, and stdout closed by the reader (`kodev resolve ... | docker compose -f - up -d`).

The daemon tests run a dockerd of their own (as tests/integration/test_reliability.py does), so that stopping
it, and removing every image from it, touches nobody else's work.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kodev.builder import BuiltImage
from kodev.compose import ComposeCLI, ComposeError, ComposeProject, stop
from kodev.errors import DaemonConnectionError, GoError, ImageError
from kodev.gobuild import BuildRequest, compile_commands
from kodev.gomod import resolve_commands
from kodev.gotool import GoTool, find_go
from kodev.publish.daemon import DaemonPublisher
from kodev.publish.pruning import PruningPublisher
from kodev.session import Session
from kodev.ui import UI
from tests.integration.compose_support import compose_cli  # noqa: F401 - a fixture
from tests.integration.conftest import run_kodev
from tests.integration.private_daemon import PrivateDaemon, private_dockerd

GREETING = "internal/greeting/greeting.go"


# --- a dockerd of this module's own ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def private_daemon() -> Iterator[PrivateDaemon]:
    with private_dockerd("kb-") as daemon:
        yield daemon


@pytest.fixture
def on_private(hello: Path, private_daemon: PrivateDaemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """kodev in a copy of examples/hello, talking to the private dockerd, which holds no image to begin with."""
    if private_daemon.process is None or private_daemon.process.poll() is not None:
        private_daemon.start()
    private_daemon.remove_all_images()
    monkeypatch.setenv("DOCKER_HOST", private_daemon.host)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.chdir(hello)
    (hello / "kodev.toml").write_text(f'repo = "kodev.test/{uuid.uuid4().hex[:12]}"\n')
    yield hello
    if private_daemon.process is None or private_daemon.process.poll() is not None:
        private_daemon.start()  # the next test finds it running


def open_session() -> contextlib.AbstractContextManager[Session]:
    return Session.open(None, None, None, ui=UI(stdout=io.StringIO(), stderr=io.StringIO()))


def greet(module: Path, greeting: str) -> None:
    """A new greeting: a new binary layer on the same base and kodata."""
    path = module / GREETING
    text = path.read_text()
    start = text.index('return "') + len('return "')
    path.write_text(text[:start] + greeting + text[text.index(", ", start):])


def build_hello(session: Session) -> BuiltImage:
    [built] = session.build_paths(["./cmd/hello"])
    return built


def daemon_publisher(session: Session) -> DaemonPublisher:
    assert isinstance(session.publisher, PruningPublisher)
    inner = session.publisher.inner
    assert isinstance(inner, DaemonPublisher)
    return inner


# --- slim loads: only an answer from the daemon turns them off ------------------------------------------

@pytest.mark.parametrize("when", ["before the load", "during the load"])
def test_a_daemon_lost_at_a_slim_load_is_an_error_and_slim_loads_stay_on(
        on_private: Path, private_daemon: PrivateDaemon, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """The daemon is stopped before kodev publishes a changed image, or while it streams the slim archive
    (from inside the stream, after its first chunk: the one moment in the load a test can hit reliably).
    Nothing about the daemon is faked."""
    from kodev.image.archive import docker_save_stream as real_stream

    def stopping_stream(images: Any, omit: frozenset[str] = frozenset()) -> Iterator[bytes]:
        chunks = real_stream(images, omit)
        yield next(chunks)
        if omit:
            private_daemon.stop()
        yield from chunks

    with open_session() as session:
        first = build_hello(session)
        assert not first.published.slim  # nothing to share yet: the whole archive
        marker = daemon_publisher(session).fallback_file()
        greet(on_private, "Howdy")
        with monkeypatch.context() as patch, pytest.raises(DaemonConnectionError, match="lost the Docker daemon"):
            if when == "before the load":
                private_daemon.stop()
            else:
                patch.setattr("kodev.publish.daemon.docker_save_stream", stopping_stream)
            build_hello(session)
        assert private_daemon.process is not None and private_daemon.process.poll() is not None
        assert not marker.exists(), "a lost connection turned slim loads off for good"

        private_daemon.start()
        again = build_hello(session)  # the same session, after the restart: the changed image goes slim
        assert again.published.slim, again.published
    assert not marker.exists()
    greet(on_private, "Hi there")
    with open_session() as later:  # and a later session
        assert build_hello(later).published.slim


def test_a_refusal_for_layers_the_daemon_no_longer_has_keeps_slim_loads_on(
        on_private: Path, private_daemon: PrivateDaemon) -> None:
    """kodev remembers the layers it loaded; removed since (`docker rmi`, a prune), the daemon really refuses
    the slim archive. That says nothing about partial archives: the full one goes, and the next load is slim."""
    with open_session() as session:
        first = build_hello(session)
        marker = daemon_publisher(session).fallback_file()
        private_daemon.remove_all_images()  # the base layers kodev remembers are gone
        greet(on_private, "Howdy")
        refused = build_hello(session)
        assert not refused.published.slim and refused.published.image_id != first.published.image_id
        assert not marker.exists()
        greet(on_private, "Hi there")
        assert build_hello(session).published.slim


# --- Compose that never answers ---------------------------------------------------------------------------

@pytest.fixture
def silent_daemon(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers: a hung Docker daemon, as Compose sees one."""
    path = Path(tempfile.mkdtemp(prefix="kh-", dir="/tmp")) / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"unix://{path}"
    server.close()
    for conn in accepted:
        conn.close()
    shutil.rmtree(path.parent, ignore_errors=True)


def test_compose_that_does_not_finish_in_time_is_a_clear_error(
        compose_cli: ComposeCLI, silent_daemon: str, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kodev.compose.lifecycle as lifecycle

    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services:\n  web:\n    image: kodev.test/none:latest\n")
    project = ComposeProject(files=(compose_file,), name=f"kodevtest-{uuid.uuid4().hex[:8]}", workdir=tmp_path,
                             services=())
    monkeypatch.setenv("DOCKER_HOST", silent_daemon)
    monkeypatch.setattr(lifecycle, "_TIMEOUT", 1.0)
    with pytest.raises(ComposeError) as caught:
        stop(compose_cli, project)
    message = str(caught.value)
    assert f"-p {project.name} stop` did not finish within 1 seconds" in message, message
    assert "Check that the Docker daemon answers" in message and "\n" not in message


# --- `go` disappearing between two calls --------------------------------------------------------------------

def test_go_that_disappears_after_kodev_found_it_is_a_clear_error(go_binary: str, hello: Path,
                                                                  tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "go").symlink_to(go_binary)
    go = find_go(str(bin_dir / "go"), {})
    [command] = resolve_commands(go, ["./cmd/hello"], hello)  # `run` works while go is there
    (bin_dir / "go").unlink()
    with pytest.raises(GoError, match=rf"the Go toolchain at {bin_dir}/go disappeared .*--go PATH"):
        compile_commands(go, [BuildRequest(command=command)], tmp_path / "out", lambda _: None)  # `popen`
    with pytest.raises(GoError, match="disappeared"):
        resolve_commands(go, ["./cmd/hello"], hello)


def test_go_run_in_a_directory_that_is_gone_says_so(go_binary: str, tmp_path: Path) -> None:
    go = GoTool(go_binary, {})
    gone = tmp_path / "gone"
    with pytest.raises(GoError, match=rf"cannot run go in {gone}: that directory no longer exists"):
        go.popen(["version"], cwd=gone)


# --- kodev.toml paths that name no command, and patterns ---------------------------------------------------

def test_kodev_watch_names_the_config_key_of_a_path_that_is_no_command(hello: Path) -> None:
    config = hello / "kodev.toml"
    config.write_text('[services.server]\ncommand = "./cmd/sever"\nnetwork = "host"\n')
    done = run_kodev(["watch", "--json"], hello, timeout=60)
    assert done.returncode == 1
    error = next(line for line in done.stdout.splitlines() if '"event": "error"' in line)
    assert '"kind": "ConfigError"' in error
    assert f"{config}: services.server.command: ./cmd/sever: no such directory" in error, error
    assert "unexpected" not in done.stdout + done.stderr


# --- stdout closed by its reader --------------------------------------------------------------------------

def test_kodev_resolve_into_a_closed_pipe_exits_quietly(compose_cli: ComposeCLI, hello: Path,  # noqa: F811
                                                       tmp_path: Path) -> None:
    """`kodev resolve -f compose.yaml | docker compose -f - up -d` where the reader exits at once (a docker
    CLI without the compose plugin says `unknown shorthand flag: 'f'`): as `head -c0` does here."""
    (hello / "compose.yaml").write_text("services:\n  hello:\n    image: ko://./cmd/hello\n")
    repo = f"kodev.test/{uuid.uuid4().hex[:12]}"
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    env = {**os.environ, "KODEV_COMPOSE": " ".join(compose_cli.argv)}
    try:
        pipeline = subprocess.run(["bash", "-c", f"{sys.executable} -m kodev resolve -f compose.yaml | head -c0;"
                                   " echo ${PIPESTATUS[0]}"], cwd=hello, env=env, capture_output=True, text=True,
                                  timeout=120, check=False)
        assert pipeline.stdout.strip() == str(128 + signal.SIGPIPE), pipeline
        assert "BrokenPipe" not in pipeline.stderr and "unexpected" not in pipeline.stderr, pipeline.stderr
        assert "Exception ignored" not in pipeline.stderr, pipeline.stderr
    finally:
        import docker

        client = docker.from_env()
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(f"{repo}/hello:latest", force=True)
        client.close()



def test_a_layer_file_gone_from_the_cache_is_an_image_error_not_a_lost_daemon(
        hello: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive is read while it is sent: a failure to read it is kodev's side, and says so."""
    monkeypatch.setenv("KODEV_CACHE_DIR", str(tmp_path / "cache"))  # a cache of this test's own to break
    monkeypatch.chdir(hello)
    repo = f"kodev.test/{uuid.uuid4().hex[:12]}"
    (hello / "kodev.toml").write_text(f'repo = "{repo}"\n')
    with open_session() as session:
        try:
            image = build_hello(session).image
            image.layers[-1].path.unlink()
            with pytest.raises(ImageError, match=r"cannot read the image's layers .*build again"):
                DaemonPublisher(session.daemon).publish(image, f"{repo}/other:latest")  # the whole archive
        finally:
            for tag in (f"{repo}/hello:latest", f"{repo}/other:latest"):
                with contextlib.suppress(Exception):
                    session.daemon.api.remove_image(tag, force=True)
