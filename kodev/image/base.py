"""Base images: what the command's layers are stacked on.

A `BaseImage` is its layers (tar files on disk) and the `config` section of its image config. This module
holds the embedded `static` base, built here from Python packages so it works offline, and `scratch`;
`imported` reads the others (the daemon, `docker save` archives, OCI layouts) into the same shape, and
`resolve` decides which a name means.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kodev.image.layers import Layer, LayerWriter, cache_key, cached_layer, remember_layer
from kodev.platform import Platform

STATIC = "static"
SCRATCH = "scratch"
NONROOT_UID = 65532
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
ZONEINFO = "usr/share/zoneinfo"

_PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
)
_GROUP = f"root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT_UID}:\n"
_NSSWITCH = "hosts: files dns\n"  # so Go's resolver consults /etc/hosts first, as on distroless


@dataclass(frozen=True)
class BaseImage:
    """`name` as configured; `config` is the base's runtime config (Env, User, WorkingDir, Labels, ...)."""

    name: str
    layers: tuple[Layer, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[Mapping[str, Any], ...] = ()
    platform: Platform | None = None  # None: fits any platform (static, scratch)
    in_daemon: str | None = None  # the daemon's image ID when the base came from the daemon
    has_var_run: bool = False  # whether /var/run exists in it (else the kodata layer adds /var, /var/run)


def scratch() -> BaseImage:
    """The empty base: no layers, no config; the app runs as root with PATH=/ko-app."""
    return BaseImage(name=SCRATCH, layers=())


def static() -> BaseImage:
    """The embedded default: like distroless `static`, from certifi and tzdata, user 65532."""
    versions = [f"{dist}={importlib.metadata.version(dist)}" for dist in ("certifi", "tzdata")]
    created_by = f"kodev: static base ({', '.join(versions)})"
    key = cache_key("static-base-2", _PASSWD, _GROUP, _NSSWITCH, *versions)
    layer = cached_layer(key, created_by) or _write_static_layer(created_by, key)
    config = {
        "Env": [f"PATH={DEFAULT_PATH}", f"SSL_CERT_FILE=/{CA_BUNDLE}"],
        "User": str(NONROOT_UID),
        "WorkingDir": "/",
    }
    return BaseImage(name=STATIC, layers=(layer,), config=config, has_var_run=True,
                     history=({"created": "1970-01-01T00:00:00Z", "created_by": created_by},))


def _write_static_layer(created_by: str, key: str) -> Layer:
    import certifi
    import tzdata

    zoneinfo_root = Path(tzdata.__file__).parent / "zoneinfo"
    with LayerWriter(created_by, mtime=0) as writer:
        for directory in ("etc", "etc/ssl", "etc/ssl/certs", "home", "root", "tmp", "usr", "usr/share", "var",
                          "var/run"):
            mode = {"tmp": 0o1777, "root": 0o700}.get(directory, 0o755)
            writer.directory(directory, mode)
            if directory == "etc":
                writer.data("etc/group", _GROUP.encode())
                writer.data("etc/nsswitch.conf", _NSSWITCH.encode())
                writer.data("etc/passwd", _PASSWD.encode())
            if directory == "etc/ssl/certs":
                writer.file(CA_BUNDLE, Path(certifi.where()))
            if directory == "home":
                writer.directory("home/nonroot", 0o700, uid=NONROOT_UID, gid=NONROOT_UID)
        writer.directory(ZONEINFO, 0o755)
        for path in sorted(zoneinfo_root.rglob("*")):
            rel = path.relative_to(zoneinfo_root)
            if "__pycache__" in rel.parts or path.name == "__init__.py":
                continue  # Python packaging, not zoneinfo
            name = f"{ZONEINFO}/{rel.as_posix()}"
            if path.is_dir():
                writer.directory(name, 0o755)
            else:
                writer.file(name, path, 0o644)
        layer = writer.finish()
    remember_layer(key, layer)
    return layer
