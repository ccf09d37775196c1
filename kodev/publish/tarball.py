"""Publish into a `docker save` tarball: every image published goes into one archive, written on close.

Like ko's `--tarball`: the archive can be carried to another machine and loaded with `docker load`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from kodev.errors import KodevError
from kodev.image.archive import docker_save_stream
from kodev.image.assemble import Image
from kodev.publish import Published


class TarballPublisher:
    """Collects images; `close` writes them all, with their tags, into `path` (atomically)."""

    def __init__(self, path: Path) -> None:
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK) or path.is_dir():
            raise KodevError(f"cannot write the image archive {path}: its directory does not exist or is not "
                             "writable, or it is a directory. Name a file in a writable directory (--tarball FILE).")
        self.path = path
        self._images: list[tuple[Image, list[str]]] = []

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        self._images.append((image, [ref]))
        image_id = "sha256:" + hashlib.sha256(image.config_json).hexdigest()
        return Published(f"{self.path}#{ref}", image_id, 0, 0.0, destination="tarball")

    def close(self) -> None:
        if not self._images:
            return
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            with open(partial, "wb") as out:
                for chunk in docker_save_stream(self._images):
                    out.write(chunk)
            os.replace(partial, self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise KodevError(f"cannot write the image archive {self.path}: {exc.strerror or exc}. Check that "
                             "its directory exists and is writable.") from None
        self._images.clear()
