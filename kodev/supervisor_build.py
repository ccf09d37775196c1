"""kodev's supervisor as a binary: its Go source (kodev/supervisor/*.go), compiled for the target once
per Go version, platform and source into kodev's cache, and the name it goes by in a container. Below both
ways of swapping: containers (deliver/) and pods (kube/)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from kodev import cache
from kodev.errors import GoError
from kodev.gotool import GoTool

SUPERVISOR = ".supervisor"  # the supervisor's name where it is put (a Go command is never named so)
SOURCES = Path(__file__).resolve().parent / "supervisor"  # one Go package, standard library only


def build_supervisor(go: GoTool) -> Path:
    """The supervisor for the target platform (go.env), static; compiled once per Go version, platform and
    source, into kodev's cache."""
    files = sorted(SOURCES.glob("*.go"))
    source = b"\0".join(part for file in files for part in (file.name.encode(), file.read_bytes()))
    version = go.version(Path.cwd())
    target = " ".join(f"{k}={go.env.get(k, '')}" for k in ("GOOS", "GOARCH", "GOARM", "GOAMD64", "GOARM64"))
    key = hashlib.sha256(b"\0".join([version.encode(), target.encode(), source])).hexdigest()[:20]
    built = cache.subdir("supervisor") / f"supervisor-{key}"
    if built.is_file():
        return built
    with tempfile.TemporaryDirectory(prefix="supervisor-", dir=cache.subdir("tmp")) as scratch:
        for file in files:
            shutil.copyfile(file, Path(scratch) / file.name)
        (Path(scratch) / "go.mod").write_text("module kodev.dev/supervisor\n\ngo 1.21\n")
        out = Path(scratch) / "supervisor"
        done = go.run(["build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."], cwd=Path(scratch),
                      extra_env={"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"})
        if done.returncode != 0:
            raise GoError(f"cannot compile kodev's supervisor with {go.binary}: {done.stderr.strip()[:500]}. "
                          "Use --no-swap to recreate containers instead.")
        os.replace(out, built)  # atomic: a concurrent kodev finds a whole file or none
    return built
