"""ko's template variables in `flags` and `ldflags`: {{.Env.NAME}}, {{.Git.ShortCommit}}, {{.Date}}, ...

Only field references are supported (no pipelines or functions); anything else is an error naming the
template and where it was written, rather than a flag that silently means something else.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kodev.epoch import read_epoch
from kodev.errors import ConfigError

_FIELD = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_GIT_FIELDS = ("Branch", "Tag", "ShortCommit", "FullCommit", "CommitDate", "CommitTimestamp", "IsDirty",
               "IsClean", "TreeState")


@dataclass(frozen=True)
class GitHead:
    """What every build needs of the git checkout: where it is, its commit, where it comes from."""

    root: Path
    full_commit: str
    remote_url: str | None


@dataclass(frozen=True)
class GitInfo(GitHead):
    """The git checkout a module lives in, with ko's (goreleaser's) field names: what `{{.Git.*}}` needs."""

    short_commit: str
    branch: str
    tag: str
    commit_timestamp: int
    dirty: bool

    def field(self, name: str) -> str:
        return {
            "Branch": self.branch, "Tag": self.tag, "ShortCommit": self.short_commit,
            "FullCommit": self.full_commit, "CommitTimestamp": str(self.commit_timestamp),
            "CommitDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.commit_timestamp)),
            "IsDirty": str(self.dirty).lower(), "IsClean": str(not self.dirty).lower(),
            "TreeState": "dirty" if self.dirty else "clean",
        }[name]


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_head(directory: Path) -> GitHead | None:
    """The checkout holding `directory` with two quick git calls (cheap enough for every rebuild), or None
    when it is not in one (or has no commit)."""
    head = _git(directory, "rev-parse", "--show-toplevel", "HEAD")
    if head is None or len(head.splitlines()) != 2:
        return None
    root, full = head.splitlines()
    remote = _git(directory, "remote", "get-url", "origin")
    return GitHead(Path(root), full, _without_credentials(remote) if remote else None)


def git_info(directory: Path) -> GitInfo | None:
    """`git_head` and what templates need besides (four more git calls: branch, tag, commit time, dirty)."""
    head = git_head(directory)
    if head is None:
        return None
    tag = (_git(directory, "tag", "--points-at", "HEAD", "--sort=-version:refname") or "").split("\n")[0]
    tag = tag or _git(directory, "describe", "--tags", "--abbrev=0") or "v0.0.0"
    return GitInfo(
        root=head.root, full_commit=head.full_commit, remote_url=head.remote_url,
        short_commit=head.full_commit[:7], branch=_git(directory, "rev-parse", "--abbrev-ref", "HEAD") or "",
        tag=tag, commit_timestamp=int(_git(directory, "log", "-1", "--format=%ct") or 0),
        dirty=bool(_git(directory, "status", "--porcelain", "--untracked-files=no")),
    )


def _without_credentials(url: str) -> str:
    """A remote URL fit for an image label: never a token or password from `https://user:token@host`."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


@dataclass(frozen=True)
class TemplateContext:
    env: Mapping[str, str]
    git: GitInfo | None
    module_dir: Path
    now: int

    @classmethod
    def current(cls, module_dir: Path, git: GitInfo | None, env: Mapping[str, str] | None = None
                ) -> TemplateContext:
        """The context of a build now: `env` (default: this process's environment) for {{.Env.*}}, and
        SOURCE_DATE_EPOCH, read as the image timestamps read it, else the clock, for {{.Date}}."""
        env = dict(os.environ if env is None else env)
        epoch = read_epoch(env, "SOURCE_DATE_EPOCH")
        return cls(env=env, git=git, module_dir=module_dir, now=int(time.time()) if epoch is None else epoch)


def expand(value: str, context: TemplateContext, where: str) -> str:
    """`value` with every {{.Field}} replaced; `where` names the config key, for errors."""

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1)
        parts = expr.split(".")
        if len(parts) == 3 and parts[0] == "" and parts[1] == "Env" and parts[2]:
            return context.env.get(parts[2], "")
        if len(parts) == 3 and parts[0] == "" and parts[1] == "Git" and parts[2] in _GIT_FIELDS:
            if context.git is None:
                raise ConfigError(f"{where}: {match.group(0)} needs git, but {context.module_dir} is not in "
                                  "a git checkout with a commit. Commit once, or drop the template.")
            return context.git.field(parts[2])
        if expr == ".Date":
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(context.now))
        if expr == ".Timestamp":
            return str(context.now)
        raise ConfigError(f"{where}: unknown template key {match.group(0)} in {value!r}. Known: "
                          "{{.Env.NAME}}, {{.Date}}, {{.Timestamp}}, "
                          + ", ".join(f"{{{{.Git.{name}}}}}" for name in _GIT_FIELDS) + ".")

    return _FIELD.sub(replace, value)
