"""When an applied workload has rolled out: its new pods Ready (and its old ones gone), as `kubectl rollout
status` decides it; and why it cannot (a pod that cannot pull its image, or crashes), said early.

`progress` and `pod_trouble` read objects as the API returns them (camelCase JSON) and are pure; `wait`
polls the cluster with them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kodev.kube.apply import Applied, get
from kodev.kube.connect import Cluster, KubeError, reason
from kodev.kube.objects import containers

POLL_SECONDS = 0.1
# Waiting reasons that do not go away by waiting (the kubelet retries, with back-off, what it cannot fix).
_STUCK = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError",
          "CreateContainerError", "RunContainerError")


class RolloutError(KubeError):
    """A workload was applied and did not roll out: what ran before it may still run."""


@dataclass(frozen=True)
class Progress:
    done: bool
    waiting_for: str = ""  # what it waits for, in a few words (for a timeout's message)


def progress(body: Mapping[str, Any], generation: int) -> Progress:
    """How far `body` (a workload as read back) is from having rolled out the spec of `generation`."""
    kind = body.get("kind")
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if kind == "Pod":
        return _pod_progress(body)
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet") and (
            status.get("observedGeneration") or 0) < generation:
        return Progress(False, "the controller to see the new spec")
    if kind == "Deployment":
        for condition in status.get("conditions") or ():
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                raise RolloutError(f"deployment/{body['metadata']['name']} exceeded its progress deadline: "
                                f"{condition.get('message', '')}")
        wanted = spec.get("replicas", 1)
        updated = status.get("updatedReplicas") or 0
        if updated < wanted:
            return Progress(False, f"{updated} of {wanted} new pods")
        if (status.get("replicas") or 0) > updated:
            return Progress(False, f"{status['replicas'] - updated} old pods to go")
        if (status.get("availableReplicas") or 0) < updated:
            return Progress(False, f"{status.get('availableReplicas') or 0} of {updated} new pods ready")
        return Progress(True)
    if kind == "StatefulSet":
        wanted = spec.get("replicas", 1)
        if (status.get("readyReplicas") or 0) < wanted or (status.get("updatedReplicas") or 0) < wanted:
            return Progress(False, f"{status.get('readyReplicas') or 0} of {wanted} pods updated and ready")
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return Progress(False, "the update to complete")
        return Progress(True)
    if kind == "DaemonSet":
        wanted = status.get("desiredNumberScheduled") or 0
        if (status.get("updatedNumberScheduled") or 0) < wanted or (status.get("numberAvailable") or 0) < wanted:
            return Progress(False, f"{status.get('numberAvailable') or 0} of {wanted} pods updated and available")
        return Progress(True)
    if kind == "ReplicaSet":
        wanted = spec.get("replicas", 1)
        ready = status.get("readyReplicas") or 0
        return Progress(ready >= wanted, f"{ready} of {wanted} pods ready")
    return Progress(True)  # a Job runs to its end, other kinds have no pods: applied is all


def _pod_progress(pod: Mapping[str, Any]) -> Progress:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    wanted = {c["name"]: c.get("image") for c in spec.get("containers") or ()}
    statuses = {c["name"]: c for c in status.get("containerStatuses") or ()}
    for name, image in wanted.items():
        found = statuses.get(name)
        if found is None or not _runs(found, image):
            return Progress(False, f"container {name} to run its new image")
        if not found.get("ready"):
            return Progress(False, f"container {name} to be ready")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return Progress(ready, "the pod to be ready")


def _runs(status: Mapping[str, Any], image: object) -> bool:
    """Whether a container's status says it runs `image`. containerd reports `image` as the image's own ID
    (`sha256:` of its config) and `imageID` as the digest reference it pulled; other runtimes the reference
    itself: either will do."""
    reported = status.get("image")
    return reported == image or _same_image(reported, image) or _same_image(status.get("imageID"), image)


def _same_image(reported: object, wanted: object) -> bool:
    """The kubelet reports a digest reference as it ran it; the registry's `HOST/NAME@DIGEST` may come back
    with the digest alone differing in form (`docker.io/` added): compare the digests."""
    if not isinstance(reported, str) or not isinstance(wanted, str) or "@" not in wanted:
        return False
    return reported.endswith("@" + wanted.rsplit("@", 1)[1])


def of_template(pods: Sequence[Mapping[str, Any]], body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The pods that run the workload's current template (its images, container by container), alive: a pod of
    the revision being replaced (say the crash-looping one a fix replaces) is not this rollout's trouble."""
    wanted = {c.get("name"): c.get("image") for c in containers(body)}
    found = []
    for pod in pods:
        has = {c.get("name"): c.get("image") for c in containers({"kind": "Pod", "spec": pod.get("spec") or {}})}
        deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
        if not deleting and all(has.get(name) == image for name, image in wanted.items()):
            found.append(pod)
    return found


def pod_trouble(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a pod of the rollout cannot become ready by waiting, or None."""
    for pod in pods:
        status = pod.get("status") or {}
        for container in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _STUCK:
                name = (pod.get("metadata") or {}).get("name", "?")
                return (f"pod {name}: container {container.get('name')} is {waiting['reason']}"
                        + (f" ({waiting['message']})" if waiting.get("message") else ""))
    return None


def selector(body: Mapping[str, Any]) -> str | None:
    """The label selector of a workload's pods, as `kubectl get pods -l` takes it (None: a Pod, or none)."""
    labels = ((body.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def pods(cluster: Cluster, applied: Applied, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods of a workload as the API has them now."""
    if applied.key.kind == "Pod":
        return [dict(body)]
    labels = selector(body)
    if labels is None or applied.namespace is None:
        return []
    resource = cluster.dynamic.resources.get(api_version="v1", kind="Pod")
    found = resource.get(namespace=applied.namespace, label_selector=labels).to_dict()
    return [dict(item) for item in found.get("items") or ()]


def wait(cluster: Cluster, applied: Applied, timeout: float) -> None:
    """Until `applied` has rolled out; RolloutError when a pod of it is stuck or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = get(cluster, applied)
            if body is None:
                raise RolloutError(f"{applied.key} was deleted while kodev waited for it to roll out")
            state = progress(body, applied.generation)
            if state.done:
                return
            trouble = pod_trouble(of_template(pods(cluster, applied, body), body))
        except RolloutError:
            raise
        except Exception as exc:  # the API went away for a moment: tried again until the deadline
            state, trouble = Progress(False, f"the API ({reason(exc)})"), None
        if trouble is not None:
            raise RolloutError(f"{applied.key} cannot roll out: {trouble}. Fix it and save again (kubectl describe "
                               "shows more).")
        if time.monotonic() > deadline:
            raise RolloutError(f"{applied.key} did not roll out within {timeout:.0f}s (waiting for "
                               f"{state.waiting_for}). kubectl describe shows why; kodev keeps watching.")
        time.sleep(POLL_SECONDS)
