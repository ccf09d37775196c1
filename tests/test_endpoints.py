"""kodev.endpoints: the unreachable-daemon message names kodev's private dockerd, with the line that uses it.

Real unix sockets stand for the private dockerd: one that listens (answers), one whose listener is gone
(a stale socket file). kodev never switches to them on its own; it says where they are.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kodev import endpoints
from kodev.endpoints import unreachable_hint


@pytest.fixture(autouse=True)
def _no_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The machine's own /tmp/kodev-dockerd must not decide these tests.
    monkeypatch.setattr(endpoints, "DEFAULT_DOCKERD_DIR", tmp_path / "default-dir")
    monkeypatch.delenv("KODEV_DOCKERD_DIR", raising=False)


@pytest.fixture
def listening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "dockerd"
    directory.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(directory / "docker.sock"))
        server.listen()
        monkeypatch.setenv("KODEV_DOCKERD_DIR", str(directory))
        yield directory / "docker.sock"


def test_names_an_answering_private_dockerd_and_the_export_line(listening: Path) -> None:
    text = unreachable_hint("unix:///var/run/docker.sock (the default)")
    assert text.startswith("Tried unix:///var/run/docker.sock (the default).")
    assert f"answers at {listening}" in text
    assert f"`export DOCKER_HOST=unix://{listening}`" in text


def test_the_endpoint_tried_is_not_offered_again(listening: Path) -> None:
    text = unreachable_hint(f"unix://{listening} (from DOCKER_HOST)")
    assert "export DOCKER_HOST" not in text
    assert "default-dir" in text  # the other place looked at is named


def test_a_stale_socket_is_named_as_not_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "stale"
    directory.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(directory / "docker.sock"))  # closed without unlinking: the file stays
    monkeypatch.setenv("KODEV_DOCKERD_DIR", str(directory))
    text = unreachable_hint("tcp://127.0.0.1:1 (from DOCKER_HOST)")
    assert f"socket at {directory / 'docker.sock'}, but it does not answer" in text
    assert "export DOCKER_HOST" not in text


def test_every_place_looked_at_is_named_when_nothing_is_found(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_DOCKERD_DIR", str(tmp_path / "nothing-here"))
    text = unreachable_hint("unix:///var/run/docker.sock")
    assert f"looked at {tmp_path / 'nothing-here' / 'docker.sock'} or {tmp_path / 'default-dir' / 'docker.sock'}" \
        in text
