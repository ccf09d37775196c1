"""An edited manifest of `kodev watch -k`: read again, and each object it changes applied (and rolled out).

A manifest that does not parse, or an object the API refuses, changes nothing: the running objects stay as
they are and the error says what to fix. An object taken out of the manifests is left on the cluster (as
`kubectl apply` without --prune leaves it); a new ko:// reference needs a restart (its command is not built
by this session), and is said so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kodev import manifests
from kodev.errors import KodevError, reworded
from kodev.kube import objects
from kodev.kube.stack import KubeStack
from kodev.ui import UI


class ManifestReload:
    def __init__(self, ui: UI, stack: KubeStack) -> None:
        self.ui = ui
        self.stack = stack
        self.sources = list(stack.sources)

    def concerns(self, path: Path) -> bool:
        return path.suffix in manifests.YAML_SUFFIXES and any(path == s or path.is_relative_to(s) for s in self.sources)

    def check(self, changed: Sequence[Path]) -> bool:
        """Apply what the edited manifests now say, if any of `changed` is one; True if it was."""
        if not self.stack.started or not any(self.concerns(p.absolute()) for p in changed):
            return False
        try:
            found = objects.read(manifests.collect(self.sources))
        except KodevError as exc:
            self.ui.error(reworded(exc, f"{exc} What runs stays as it is; fix the manifest and save again."))
            return True
        built = set(self.stack.refs)
        added = sorted({p for o in found for p in o.references} - built)
        if added:
            self.ui.warn(f"the manifests now name {', '.join('ko://' + p for p in added)}, which this kodev does not "
                         "build: restart kodev watch -k to build them. The objects that name them are not applied.")
        gone = [str(o.key) for o in self.stack.objects if o.key not in {f.key for f in found}]
        if gone:
            self.ui.warn(f"{', '.join(gone)}: no longer in the manifests, left on the cluster (delete them with "
                         "kubectl if you want them gone)")
        known = {o.key for o in self.stack.objects}
        new = [str(o.key) for o in found if o.key not in known and o.references]
        if new:
            self.ui.warn(f"{', '.join(new)}: new in the manifests; applied now, and rolled out on rebuilds once kodev "
                         "watch -k is restarted")
        for thing in self.stack.replace(found):
            if thing.references <= built:
                try:
                    self.stack.roll(thing)
                except KodevError as exc:
                    self.ui.error(exc)
                    continue
                rolled = " and rolled out" if thing.workload else ""
                self.ui.info(f"{thing.key}: applied the edited manifest{rolled}")
        return True
