"""The examples/ that tests (and the benchmark) work on: as committed, never as the working tree has them.

README's Quick start invites edits to examples/hello; tests that copied the working tree would then fail by
the dozen, for no fault of kodev's. So a copy comes from git HEAD (`git archive`, symlinks kept), and only
outside a git checkout (a source archive), or for an example not committed yet, from the working tree.
Standard library only: the benchmark uses it too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=False)


def committed(repo: Path, path: str) -> bool:
    """Whether `path` (relative to `repo`) is in the HEAD commit of a git checkout at `repo`."""
    if shutil.which("git") is None:
        return False
    listed = _git(repo, "ls-tree", "--name-only", "HEAD", path)
    return listed.returncode == 0 and bool(listed.stdout.strip())


def extract_committed(repo: Path, path: str, target: Path) -> None:
    """`git archive HEAD:path | tar -x -C target`: the committed tree of `path`, symlinks as symlinks."""
    archive = _git(repo, "archive", "--format=tar", f"HEAD:{path}")
    if archive.returncode != 0:
        raise RuntimeError(f"git archive HEAD:{path} failed: {archive.stderr.decode(errors='replace')}")
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)


def copy_example(name: str, target: Path, repo: Path = REPO) -> Path:
    """A private copy of examples/`name` at `target` (which must not exist yet), as committed."""
    path = f"examples/{name}"
    if committed(repo, path):
        extract_committed(repo, path, target)
    else:
        shutil.copytree(repo / path, target, symlinks=True)
    return target


def scratch_repo(target: Path, repo: Path = REPO) -> Path:
    """A git repository at `target` holding this checkout's files as they are now, but examples/ as committed.

    For tests that run the repository's own scripts or test suite in a copy they may change freely: the code
    under test is the working tree's (uncommitted changes included), the examples are pristine, and the copy's
    HEAD is that state. Modification times are kept (scripts/env.sh compares pyproject.toml with its stamp).
    """
    listed = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed.returncode != 0:
        raise RuntimeError(f"{repo} is not a git checkout: {listed.stderr.decode(errors='replace')}")
    for name in sorted(set(listed.stdout.decode().split("\0"))):
        if not name or name.startswith("examples/"):
            continue
        source, copy = repo / name, target / name
        if not os.path.lexists(source):
            continue  # deleted in the working tree
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    if committed(repo, "examples"):
        extract_committed(repo, "examples", target / "examples")
    identity = ["-c", "user.name=kodev tests", "-c", "user.email=tests@kodev.invalid"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "scratch copy"]):
        done = _git(target, *args)
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} in {target} failed: {done.stderr.decode(errors='replace')}")
    return target
