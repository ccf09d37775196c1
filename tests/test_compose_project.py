"""The pure parts of reading a compose project: references, kodev's services, which file set an image,
and the override file. (Compose itself runs in tests/integration/test_compose_*.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kodev.compose.override import override_document, override_path, render, write_override
from kodev.compose.project import ComposeProject, _service, classify, image_origins, split_reference
from kodev.errors import KodevError


@pytest.mark.parametrize(("image", "expected"), [
    ("kodev.local/server:latest", ("kodev.local/server", "latest")),
    ("kodev.local/server", ("kodev.local/server", "")),
    ("localhost:5000/app", ("localhost:5000/app", "")),
    ("localhost:5000/app:v1", ("localhost:5000/app", "v1")),
    ("redis:7", ("redis", "7")),
    ("kodev.local/server@sha256:abc", ("kodev.local/server@sha256:abc", "@")),
])
def test_split_reference(image: str, expected: tuple[str, str]) -> None:
    assert split_reference(image) == expected


def test_ko_references_and_own_tags_are_kodev_services(tmp_path: Path) -> None:
    own = {"kodev.local/server": "/m/cmd/server"}
    relative = _service("api", "ko://./cmd/api", False, tmp_path, own)
    assert relative.command_path == str(tmp_path / "cmd" / "api")
    assert relative.defined_in == tmp_path
    assert _service("w", "ko://example.com/m/cmd/w", True, tmp_path, own).command_path == "example.com/m/cmd/w"
    assert _service("s", "kodev.local/server", False, tmp_path, own).command_path == "/m/cmd/server"
    assert _service("s", "kodev.local/server:latest", False, tmp_path, own).command_path == "/m/cmd/server"
    # Another tag or a digest is not kodev's moving tag; other images are Compose's business.
    assert not _service("s", "kodev.local/server:v1", False, tmp_path, own).is_kodev
    assert not _service("s", "kodev.local/other", False, tmp_path, own).is_kodev
    assert not _service("db", "postgres:16", False, tmp_path, own).is_kodev


def test_relative_ko_path_is_relative_to_the_file_that_sets_the_image(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "compose.yaml").write_text(
        "include: [sub/included.yaml]\n"
        "services:\n  api: {image: ko://./cmd/api}\n  worker: {command: [x]}\n"
        "  ext: {extends: {file: lib/base.yaml, service: basic}}\n")
    (tmp_path / "sub" / "included.yaml").write_text("services:\n  inc: {image: ko://./cmd/inc}\n")
    (tmp_path / "lib" / "base.yaml").write_text("services:\n  basic: {image: ko://./cmd/basic}\n")
    (tmp_path / "override.yaml").write_text("services:\n  worker: {image: ko://./cmd/worker}\n")
    (tmp_path / "sub" / "more.yaml").write_text("services:\n  api: {image: ko://./cmd/api2}\n")
    origins = image_origins([tmp_path / "compose.yaml", tmp_path / "override.yaml", tmp_path / "sub" / "more.yaml"])
    assert origins == {"api": tmp_path / "sub", "worker": tmp_path, "inc": tmp_path / "sub", "ext": tmp_path / "lib"}


def test_classify_reads_the_normalized_model(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  api: {image: ko://./cmd/api}\n")
    model = {"name": "p", "services": {"api": {"image": "ko://./cmd/api"}, "db": {"image": "postgres"},
                                       "web": {"build": {"context": str(tmp_path)}, "image": "kodev.local/web"}}}
    project = ComposeProject(files=(tmp_path / "compose.yaml",), name="p", workdir=tmp_path, services=(),
                             model=model)
    classified = classify(project, {"kodev.local/web": "/m/cmd/web"})
    assert [s.name for s in classified.kodev_services] == ["api", "web"]
    assert classified.service("web").has_build
    assert classified.service("api").command_path == str(tmp_path / "cmd" / "api")


def _project(tmp_path: Path) -> ComposeProject:
    model = {"name": "p", "services": {"api": {"image": "ko://./cmd/api"},
                                       "web": {"image": "ko://./cmd/web", "build": {"context": "."}}}}
    project = ComposeProject(files=(tmp_path / "compose.yaml",), name="p", workdir=tmp_path, services=(),
                             model=model)
    return classify(project, {})


def test_override_sets_images_never_pulls_and_resets_build(tmp_path: Path) -> None:
    project = _project(tmp_path)
    text = render(override_document(project, {"api": "kodev.local/api:latest", "web": "kodev.local/web:latest"}))
    assert "build: !reset" in text

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: "RESET")
    assert yaml.load(text, Loader=Loader) == {"services": {
        "api": {"image": "kodev.local/api:latest", "pull_policy": "never"},
        "web": {"image": "kodev.local/web:latest", "pull_policy": "never", "build": "RESET"}}}
    assert "pull_policy" not in render(override_document(project, {"api": "x:latest"}, pull_never=False))
    with pytest.raises(KodevError, match="nosuch: no such service"):
        override_document(project, {"nosuch": "x"})


def test_override_lives_in_kodevs_cache_never_beside_the_users_files(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("KODEV_CACHE_DIR", str(cache))
    project = _project(tmp_path / "proj")
    path = write_override(project, {"api": "kodev.local/api:latest"})
    assert path.is_relative_to(cache) and path == override_path(project)
    assert not (tmp_path / "proj").exists()
    assert write_override(project, {"api": "kodev.local/api:v2"}) == path  # rewritten in place
    assert "kodev.local/api:v2" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left
