"""The objects of one `kodev watch -k` session on its cluster: applied whole once every image is pushed, then
only the workloads whose pods run a rebuilt image, each a rollout waited for until its new pods are Ready.

`KubeStack` owns what was applied (the digest each import path was last applied with, each object's
generation and uid); the deliveries of kodev/deliver/kubernetes.py ask it for rollouts. Ctrl-C leaves the
workloads running (as `ko apply` does); `--down` deletes exactly the objects this session applied — by uid,
so an object someone else made again under the same name is left alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev.kube import apply as api
from kodev.kube import rollout
from kodev.kube.connect import Cluster
from kodev.kube.logs import LineSink, PodLogs
from kodev.kube.objects import KO_SCHEME, KubeObject, ObjectKey, containers
from kodev.kube.swap import PodChannel, swappable, wire
from kodev.settings import DEFAULT_ROLLOUT_TIMEOUT
from kodev.ui import UI


@dataclass(frozen=True)
class Swapping:
    """What in-pod swaps need: the supervisor's image, and the app name of each command (import path)."""

    supervisor: str
    apps: Mapping[str, str]


class KubeStack:
    def __init__(self, cluster: Cluster, objects: Sequence[KubeObject], sources: Sequence[Path],
                 take_down: bool = False, rollout_timeout: float = DEFAULT_ROLLOUT_TIMEOUT,
                 swapping: Swapping | None = None) -> None:
        self.cluster = cluster
        self.sources = [s.absolute() for s in sources]  # the -k paths (files, or directories of YAML)
        self.objects = list(objects)
        self.take_down = take_down
        self.rollout_timeout = rollout_timeout
        self.refs: dict[str, str] = {}  # import path -> the digest reference last pushed
        self.applied: dict[ObjectKey, api.Applied] = {}
        self.started = False
        self.logs: PodLogs | None = None
        self.swapping = swapping  # None: every new image is a rollout
        self._channels: dict[tuple[str, str], PodChannel] = {}  # (pod uid, container) -> its stdin
        self._current: dict[ObjectKey, set[str]] = {}  # the pods (uids) that run the newest build of each object
        self._lock = threading.Lock()  # deliveries of several commands may roll out at once

    @property
    def namespace(self) -> str:
        return self.cluster.target.namespace

    def pushed(self, import_path: str, ref: str) -> None:
        """A new image of `import_path` is in the registry (its digest reference)."""
        with self._lock:
            self.refs[import_path] = ref

    def object(self, key: ObjectKey) -> KubeObject | None:
        """The object as the manifests say it now (None: no longer in them)."""
        return next((o for o in self.objects if o.key == key), None)

    def replace(self, objects: Sequence[KubeObject]) -> list[KubeObject]:
        """The manifests were edited: these objects from now on; those new or changed, to apply."""
        before = {o.key: o.body for o in self.objects}
        self.objects = list(objects)
        return [o for o in self.objects if before.get(o.key) != o.body]

    def running(self, import_path: str) -> list[KubeObject]:
        """The objects a new image of `import_path` must reach (those that name it)."""
        return [o for o in self.objects if import_path in o.references]

    def start(self, on_line: LineSink, ui: UI) -> list[api.Applied]:
        """Apply every object (in file order: namespaces and config before the workloads that use them),
        then wait for each workload to roll out and follow its pods' logs."""
        missing = sorted({p for o in self.objects for p in o.references} - set(self.refs))
        if missing:  # a build failed: nothing is applied until every image exists
            ui.warn(f"not applying the manifests yet: no image of {', '.join(missing)} (its build failed)")
            return []
        started = time.monotonic()
        for thing in self.objects:
            self._apply(thing)
        ui.kube_applied(self.cluster.target.context, self.namespace, [str(o.key) for o in self.objects],
                        time.monotonic() - started)
        workloads = [self.applied[o.key] for o in self.objects if o.workload]
        self.logs = PodLogs(self.cluster, on_line)
        self.logs.watch(workloads)
        self.started = True
        for workload in workloads:
            rollout.wait(self.cluster, workload, self.rollout_timeout)
            self._current[workload.key] = self._pod_uids(workload)
        ui.kube_rolled_out([str(w.key) for w in workloads], time.monotonic() - started)
        return workloads

    def roll(self, thing: KubeObject) -> None:
        """Apply `thing` with the digests pushed last; wait until it rolled out (a workload)."""
        applied = self._apply(thing)
        if thing.workload:
            rollout.wait(self.cluster, applied, self.rollout_timeout)
            self._current[thing.key] = self._pod_uids(applied)

    def _pod_uids(self, applied: api.Applied) -> set[str]:
        body = api.get(self.cluster, applied) or {}
        return {p["metadata"]["uid"] for p in rollout.pods(self.cluster, applied, body)
                if not p["metadata"].get("deletionTimestamp")}

    def swap_in(self, thing: KubeObject, import_path: str, binary: Path) -> bool:
        """Send `binary` to the supervisor of every container of `thing`'s pods that runs `import_path`. False
        (nothing sent): a pod cannot be swapped into, or is one that missed an earlier swap (it was replaced
        meanwhile, and runs an older build): the caller rolls the object out instead."""
        applied = self.applied.get(thing.key)
        if self.swapping is None or applied is None or not thing.workload:
            return False
        names = [c["name"] for c in containers(thing.body) if c.get("image") == f"{KO_SCHEME}{import_path}"]
        body = api.get(self.cluster, applied) or {}
        running = [p for p in rollout.pods(self.cluster, applied, body) if not p["metadata"].get("deletionTimestamp")]
        uids = {p["metadata"]["uid"] for p in running}
        if not names or not running or uids != self._current.get(thing.key) or not all(
                swappable(p, n) for p in running for n in names):
            return False
        for pod in running:
            for name in names:
                key = (pod["metadata"]["uid"], name)
                channel = self._channels.get(key)
                if channel is None or not channel.open:
                    channel = self._channels[key] = PodChannel(self.cluster, pod["metadata"]["namespace"],
                                                               pod["metadata"]["name"], name)
                channel.send(binary)
        return True

    def _apply(self, thing: KubeObject) -> api.Applied:
        with self._lock:
            body = thing.resolved(self.refs, self.namespace)
        if self.swapping is not None:
            wire(body, thing.body, self.swapping.apps, self.swapping.supervisor)
        applied = api.apply(self.cluster, thing, body)
        with self._lock:
            self.applied[thing.key] = applied
        return applied

    def shutdown(self) -> str:
        """Stop following logs; with --down delete what was applied (last first). What was done, for the user."""
        if self.logs is not None:
            self.logs.stop()
        for channel in self._channels.values():
            channel.close()  # the supervisors keep listening (stdinOnce: false); the apps keep running
        if not self.applied:
            return ""
        if not self.take_down:
            names = ", ".join(str(o.key) for o in self.objects if o.workload and o.key in self.applied)
            return f"left {names} running on {self.cluster.target.context} (--down deletes them)"
        deleted = [str(a.key) for a in reversed(list(self.applied.values())) if api.delete(self.cluster, a)]
        return f"deleted {', '.join(deleted) or 'nothing (all gone already)'} from {self.cluster.target.context}"
