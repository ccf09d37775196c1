"""Delve for `kodev debug`: the `dlv` that goes into debug containers, matched to the user's Go.

A Delve older than the Go that built the binary cannot read its debug information (variables go missing),
so kodev builds Delve itself, once per Go version and target platform, with the user's own `go`
(`go install github.com/go-delve/delve/cmd/dlv@DELVE_VERSION`, CGO_ENABLED=0: static, it runs in any base),
into its cache. `--dlv PATH` or KODEV_DLV names a static `dlv` instead (offline machines).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kodev import cache
from kodev.errors import GoError
from kodev.gotool import GoTool
from kodev.platform import Platform

DELVE_MODULE = "github.com/go-delve/delve"
DELVE_VERSION = "v1.27.2"  # the one place the version is pinned; README names it


FIRST_PORT = 2345  # Delve's own default; the services after the first take the next free ones


@dataclass(frozen=True)
class DebugSettings:
    """What `kodev debug` adds to a watch session: the Delve that goes into every service's container."""

    dlv: Path  # a static dlv for the containers' platform
    wait: bool = False  # each new process waits for a debugger's `continue` (else it runs at once)


class DelveError(GoError):
    """No usable Delve: the named one is missing, or building one failed."""


def find_delve(go: GoTool, platform: Platform, named: str | None = None, from_env: str | None = None) -> Path:
    """`named` (--dlv), else `from_env` (KODEV_DLV), else Delve built with `go` for `platform` (the
    containers') into kodev's cache."""
    wanted = named or from_env
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            origin = "--dlv" if named else "KODEV_DLV"
            raise DelveError(f"no Delve at {wanted!r} (from {origin}): no such executable file. Give the path of "
                             "a static `dlv` built for the containers' platform, or leave it unset and kodev "
                             "builds one with your Go.")
        return Path(found)
    built = _cached(go, platform)
    if built.is_file():
        return built
    return _build(go, platform, built)


def is_cached(go: GoTool, platform: Platform) -> bool:
    """Whether the Delve for `go`'s version and `platform` is built already (else the next find builds it)."""
    return _cached(go, platform).is_file()


def _cached(go: GoTool, platform: Platform) -> Path:
    target = "-".join(platform.go_env().values())  # GOOS-GOARCH[-GOARM|GOAMD64]
    return cache.subdir("delve") / f"dlv-{DELVE_VERSION}-{go.version(Path.cwd()) or 'go'}-{target}"


def _build(go: GoTool, platform: Platform, destination: Path) -> Path:
    """`go install` into a GOPATH of its own (GOBIN cannot take a cross-compiled binary), the user's module
    cache kept; the result renamed into place, so a concurrent kodev sees a whole file or none."""
    module_cache = go.module_cache(Path.cwd())
    with tempfile.TemporaryDirectory(prefix="delve-", dir=cache.subdir("tmp")) as scratch:
        extra = {"CGO_ENABLED": "0", "GOPATH": scratch, "GOBIN": "", "GOWORK": "off", "GOFLAGS": "-mod=mod",
                 **platform.go_env()}
        if module_cache is not None:
            extra["GOMODCACHE"] = str(module_cache)
        done = go.run(["install", f"{DELVE_MODULE}/cmd/dlv@{DELVE_VERSION}"], cwd=Path(scratch), extra_env=extra)
        if done.returncode != 0:
            detail = " ".join(done.stderr.strip().splitlines()[-3:])[:600]
            raise DelveError(
                f"cannot build Delve {DELVE_VERSION} with {go.binary}: {detail}. kodev debug needs a Delve built "
                "by the same Go as your binaries. Without the Go module proxy, build one where it is reachable "
                f"(`CGO_ENABLED=0 go install {DELVE_MODULE}/cmd/dlv@{DELVE_VERSION}`, for the containers' "
                "GOOS/GOARCH) and give it with --dlv PATH or KODEV_DLV.")
        candidates = sorted(Path(scratch, "bin").rglob("dlv"))
        if not candidates:
            raise DelveError(f"`go install` of Delve {DELVE_VERSION} reported success but left no dlv in "
                             f"{scratch}/bin. Give a static dlv with --dlv PATH or KODEV_DLV.")
        partial = destination.with_name(destination.name + ".partial")
        shutil.copyfile(candidates[0], partial)
        partial.chmod(0o555)
        os.replace(partial, destination)
    return destination
