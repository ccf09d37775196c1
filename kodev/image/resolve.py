"""Which base image a name means: `static`, `scratch`, `docker-archive:PATH`, `oci:PATH`, or an image ref.

Image references are taken from the local daemon when present, otherwise pulled through the daemon
(never with a registry client of kodev's own), then exported once into kodev's cache, keyed by image ID.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kodev.daemon import Daemon
from kodev.errors import ConfigError, DaemonError, ImageError
from kodev.image import base, imported
from kodev.imageref import valid_reference
from kodev.platform import Platform

DOCKER_ARCHIVE = "docker-archive:"
OCI_LAYOUT = "oci:"


def resolve(name: str, where: str, target: Platform, daemon: Daemon, pull: bool, root: Path,
            progress: Callable[[str], None]) -> base.BaseImage:
    """The base called `name` (from `where`, a file and key) for `target`; paths relative to `root`."""
    if name == base.STATIC:
        return base.static()
    if name == base.SCRATCH:
        return base.BaseImage(name=base.SCRATCH, layers=())
    if name.startswith(DOCKER_ARCHIVE):
        return imported.docker_archive(_path(name, DOCKER_ARCHIVE, root, where), name, target)
    if name.startswith(OCI_LAYOUT):
        path = _path(name, OCI_LAYOUT, root, where)
        if not path.is_dir():
            raise ImageError(f"{where}: base image {name}: {path} is not a directory holding an OCI layout.")
        return imported.oci_layout(path, name, target)
    if not valid_reference(name):
        raise ConfigError(f"{where}: base image {name!r} is not 'static', 'scratch', docker-archive:PATH, "
                          "oci:PATH or an image reference like cgr.dev/chainguard/static:latest.")
    return from_daemon(name, target, daemon, pull, progress)


def _path(name: str, prefix: str, root: Path, where: str) -> Path:
    raw = name.removeprefix(prefix)
    if not raw:
        raise ConfigError(f"{where}: {prefix} needs a path, e.g. {prefix}./base.tar")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else root / path


def from_daemon(ref: str, target: Platform, daemon: Daemon, pull: bool, progress: Callable[[str], None]
                ) -> base.BaseImage:
    """`ref` from the daemon (pulled first when missing, for the wrong platform, or when `pull`)."""
    inspected = daemon.inspect(ref)
    found = None if inspected is None else Platform(inspected.get("Os", ""), inspected.get("Architecture", ""),
                                                    inspected.get("Variant"))
    if inspected is None or pull or (found is not None and not target.accepts(found)):
        progress(f"pulling base image {ref} for {target} through the Docker daemon")
        daemon.pull(ref, target, progress, present=inspected is not None)
        inspected = daemon.inspect(ref)
        if inspected is None:
            raise DaemonError(f"base image {ref!r} was pulled but the daemon cannot find it afterwards.")
    image_id = str(inspected["Id"])
    cached = imported.cached(f"daemon-{image_id}", ref)
    if cached is None:
        progress(f"reading base image {ref} ({image_id[:19]}) into kodev's cache (once per image)")
        stream = imported.stream_reader(daemon.export(image_id))
        cached, config = imported.read_docker_archive(stream, ref, f"the daemon's export of {ref}", target)
        cached = imported.from_config(ref, config, cached.layers, in_daemon=image_id,
                                      has_var_run=cached.has_var_run)
        imported.remember(f"daemon-{image_id}", cached, config)
    imported.check_platform(cached, target)
    return cached


class Bases:
    """The base images of one configuration, each resolved once (bases are read into kodev's cache)."""

    def __init__(self, daemon: Daemon, target: Platform, pull: bool, root: Path,
                 progress: Callable[[str], None]) -> None:
        self.daemon = daemon
        self.target = target
        self.pull = pull  # refresh tagged bases from their registry once per session
        self.root = root
        self.progress = progress
        self._resolved: dict[str, base.BaseImage] = {}

    def get(self, name: str, where: str) -> base.BaseImage:
        if name not in self._resolved:
            self._resolved[name] = resolve(name, where, self.target, self.daemon, self.pull, self.root,
                                           self.progress)
        return self._resolved[name]

    def layer_paths(self) -> set[Path]:
        return {layer.path for found in self._resolved.values() for layer in found.layers}
