"""`kodev watch -f k8s/ --push REPO --out DIR`: the resolved manifests of the images a round pushed, rewritten
into DIR (ko's old watch mode re-applied only the affected YAML; whatever applies DIR sees only those change).

A decorator of the registry publisher: each push it makes is noted as the digest reference of its command,
and every manifest that names that command is written again into DIR — once all of its references are
known (the first round pushes them all). A file whose images did not change is not touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from kodev.errors import KodevError
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.manifests import Manifest, resolved
from kodev.publish import Published, Publisher


class ManifestOutput:
    def __init__(self, inner: Publisher, manifests: Sequence[Manifest], root: Path, out: Path) -> None:
        self.inner = inner
        self.manifests = list(manifests)
        self.root = root  # the -f directory (or a file's own directory): DIR mirrors what is below it
        self.out = out
        self.refs: dict[str, str] = {}  # import path -> the digest reference last pushed

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        published = self.inner.publish(image, ref, hints)
        labels = (json.loads(image.config_json).get("config") or {}).get("Labels") or {}
        import_path = labels.get(COMMAND_LABEL, "")
        if self.refs.get(import_path) != published.ref:
            self.refs[import_path] = published.ref
            for manifest in self.manifests:
                if import_path in manifest.references and set(manifest.references) <= set(self.refs):
                    self._write(manifest)
        return published

    def _write(self, manifest: Manifest) -> None:
        try:
            relative = manifest.path.resolve().relative_to(self.root.resolve())
        except ValueError:
            relative = Path(manifest.path.name)
        target = self.out / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_text(resolved(manifest, self.refs))
            os.replace(partial, target)  # whatever watches DIR sees a whole file
        except OSError as exc:
            raise KodevError(f"cannot write the resolved manifest {target}: {exc.strerror or exc}. Check that "
                             "--out names a directory kodev may write.") from None

    def close(self) -> None:
        self.inner.close()
