"""ko's template variables in flags and ldflags, and the git facts behind {{.Git.*}}."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kodev.errors import ConfigError
from kodev.templates import GitInfo, TemplateContext, expand, git_info
from tests.integration.conftest import _missing

NOW = 1_700_000_000  # 2023-11-14T22:13:20Z
COMMIT_TIME = 1_600_000_000  # 2020-09-13T12:26:40Z
WHERE = '/src/kodev.toml: commands."./cmd/x".ldflags'

GIT = GitInfo(
    root=Path("/src"),
    full_commit="0123456789abcdef0123456789abcdef01234567",
    short_commit="0123456",
    branch="main",
    tag="v1.2.3",
    commit_timestamp=COMMIT_TIME,
    dirty=False,
    remote_url="https://example.invalid/x.git",
)


def context(env: dict[str, str] | None = None, git: GitInfo | None = GIT) -> TemplateContext:
    return TemplateContext(env=env or {}, git=git, module_dir=Path("/src/mod"), now=NOW)


# --- expand ----------------------------------------------------------------------------------------


def test_plain_text_is_unchanged() -> None:
    assert expand("-X main.version=dev -s", context(), WHERE) == "-X main.version=dev -s"


def test_env() -> None:
    ctx = context({"VERSION": "1.0", "OTHER": "o"})
    assert expand("-X main.v={{.Env.VERSION}}", ctx, WHERE) == "-X main.v=1.0"
    assert expand("{{ .Env.VERSION }}/{{.Env.OTHER}}", ctx, WHERE) == "1.0/o"


def test_env_unset_is_empty() -> None:
    assert expand("-X main.v={{.Env.NOT_SET}}!", context({"SET": "x"}), WHERE) == "-X main.v=!"


def test_date_and_timestamp_use_context_now() -> None:
    ctx = context()
    assert expand("{{.Date}}", ctx, WHERE) == "2023-11-14T22:13:20Z"
    assert expand("t={{.Timestamp}}", ctx, WHERE) == f"t={NOW}"


def test_git_fields() -> None:
    ctx = context()
    assert expand("{{.Git.ShortCommit}}", ctx, WHERE) == "0123456"
    assert expand("{{.Git.FullCommit}}", ctx, WHERE) == GIT.full_commit
    assert expand("{{.Git.Tag}}", ctx, WHERE) == "v1.2.3"
    assert expand("{{.Git.Branch}}", ctx, WHERE) == "main"
    assert expand("{{.Git.CommitTimestamp}}", ctx, WHERE) == str(COMMIT_TIME)
    assert expand("{{.Git.CommitDate}}", ctx, WHERE) == "2020-09-13T12:26:40Z"
    assert expand("{{.Git.TreeState}} {{.Git.IsDirty}} {{.Git.IsClean}}", ctx, WHERE) == "clean false true"


def test_git_dirty_fields() -> None:
    dirty = GitInfo(**{**GIT.__dict__, "dirty": True})
    assert expand("{{.Git.TreeState}} {{.Git.IsDirty}} {{.Git.IsClean}}", context(git=dirty), WHERE) == (
        "dirty true false")


def test_several_templates_in_one_value() -> None:
    value = "-X main.version={{.Git.Tag}} -X main.commit={{.Git.ShortCommit}} -X main.date={{.Date}}"
    assert expand(value, context(), WHERE) == (
        "-X main.version=v1.2.3 -X main.commit=0123456 -X main.date=2023-11-14T22:13:20Z")


@pytest.mark.parametrize("template", ["{{.Foo}}", "{{.Env}}", "{{.Git.Nope}}", "{{.Git}}", "{{.Env.A.B}}",
                                      "{{ printf \"%s\" .Date }}", "{{.date}}"])
def test_unknown_key(template: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand(f"-X main.v={template}", context(), WHERE)
    message = str(info.value)
    assert message.startswith(WHERE)
    assert template in message
    assert "unknown template key" in message


def test_git_field_without_git() -> None:
    with pytest.raises(ConfigError) as info:
        expand("-X main.c={{.Git.ShortCommit}}", context(git=None), WHERE)
    message = str(info.value)
    assert message.startswith(WHERE)
    assert "{{.Git.ShortCommit}}" in message
    assert "/src/mod" in message


def test_env_and_date_without_git() -> None:
    ctx = context({"A": "a"}, git=None)
    assert expand("{{.Env.A}}-{{.Timestamp}}", ctx, WHERE) == f"a-{NOW}"


def test_context_current_uses_source_date_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "12345")
    monkeypatch.setenv("KODEV_TEST_VALUE", "here")
    ctx = TemplateContext.current(tmp_path, None)
    assert ctx.now == 12345
    assert ctx.env["KODEV_TEST_VALUE"] == "here"
    assert ctx.module_dir == tmp_path


# --- git_info on real repositories ----------------------------------------------------------------

@pytest.fixture
def git_cli() -> None:
    """The real git CLI; without it these tests skip, or fail under KODEV_REQUIRE_REAL=1."""
    if shutil.which("git") is None:
        _missing("the git CLI")


needs_git = pytest.mark.usefixtures("git_cli")


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, git_cli: None) -> dict[str, str]:
    """An environment in which git sees only the repositories made by the test."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    env = dict(os.environ)
    env.update(GIT_AUTHOR_DATE=f"{COMMIT_TIME} +0000", GIT_COMMITTER_DATE=f"{COMMIT_TIME} +0000")
    return env


def run_git(directory: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=kodev test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false",
         "-c", "tag.gpgsign=false", *args],
        cwd=directory, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    run_git(root, git_env, "init", "-q", "-b", "trunk")
    (root / "main.go").write_text("package main\n")
    run_git(root, git_env, "add", "main.go")
    run_git(root, git_env, "commit", "-q", "-m", "first")
    return root


@needs_git
def test_git_info_commit_and_branch(repo: Path, git_env: dict[str, str]) -> None:
    full = run_git(repo, git_env, "rev-parse", "HEAD")
    (repo / "sub").mkdir()
    info = git_info(repo / "sub")
    assert info is not None
    assert info.root == repo.resolve()
    assert info.full_commit == full
    assert len(full) == 40
    assert info.short_commit == full[:7]
    assert info.branch == "trunk"
    assert info.commit_timestamp == COMMIT_TIME
    assert info.dirty is False
    assert info.tag == "v0.0.0"  # no tag anywhere
    assert info.remote_url is None


@needs_git
def test_git_info_tag(repo: Path, git_env: dict[str, str]) -> None:
    run_git(repo, git_env, "tag", "v1.4.0")
    info = git_info(repo)
    assert info is not None
    assert info.tag == "v1.4.0"
    ctx = TemplateContext(env={}, git=info, module_dir=repo, now=NOW)
    assert expand("{{.Git.Tag}}@{{.Git.ShortCommit}}", ctx, WHERE) == f"v1.4.0@{info.full_commit[:7]}"


@needs_git
def test_git_info_nearest_earlier_tag(repo: Path, git_env: dict[str, str]) -> None:
    run_git(repo, git_env, "tag", "v0.9.0")
    (repo / "main.go").write_text("package main\n\nfunc main() {}\n")
    run_git(repo, git_env, "commit", "-q", "-am", "second")
    info = git_info(repo)
    assert info is not None
    assert info.tag == "v0.9.0"


@needs_git
def test_git_info_dirty(repo: Path) -> None:
    (repo / "main.go").write_text("package main // edited\n")
    info = git_info(repo)
    assert info is not None
    assert info.dirty is True


@needs_git
def test_git_info_remote_without_credentials(repo: Path, git_env: dict[str, str]) -> None:
    run_git(repo, git_env, "remote", "add", "origin", "https://user:tok@example.invalid/x.git")
    info = git_info(repo)
    assert info is not None
    assert info.remote_url is not None
    assert "user" not in info.remote_url
    assert "tok" not in info.remote_url
    assert info.remote_url == "https://example.invalid/x.git"


@needs_git
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ghp_secret123@example.invalid:8443/o/r.git", "https://example.invalid:8443/o/r.git"),
        ("https://example.invalid/o/r.git", "https://example.invalid/o/r.git"),
        ("git@example.invalid:o/r.git", "git@example.invalid:o/r.git"),
    ],
)
def test_git_info_remote_forms(repo: Path, git_env: dict[str, str], url: str, expected: str) -> None:
    run_git(repo, git_env, "remote", "add", "origin", url)
    info = git_info(repo)
    assert info is not None
    assert info.remote_url == expected


@needs_git
def test_git_info_not_a_repository(tmp_path: Path, git_env: dict[str, str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_info(plain) is None


@needs_git
def test_git_info_repository_without_commit(tmp_path: Path, git_env: dict[str, str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run_git(empty, git_env, "init", "-q")
    assert git_info(empty) is None


def test_git_head_agrees_with_git_info(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from kodev.templates import git_head

    head, info = git_head(repo), git_info(repo)
    assert head is not None and info is not None
    assert (head.root, head.full_commit, head.remote_url) == (info.root, info.full_commit, info.remote_url)
    assert git_head(tmp_path_factory.mktemp("plain")) is None  # pytest's temp dirs are not in a checkout
