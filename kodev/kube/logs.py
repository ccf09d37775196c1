"""Following the logs of the pods kodev's workloads run, each line prefixed by its workload (as for services).

One thread looks for pods (every `SCAN_SECONDS`, by each workload's selector); each container instance of
them (pod, container, restart count) gets a thread that streams its log from its start to its end. A
rollout's new pods are found by the scan; an old pod's stream ends with it. Kubernetes merges a container's
stdout and stderr into one log: every line comes as stdout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kodev.kube.apply import Applied, get
from kodev.kube.connect import Cluster
from kodev.kube.rollout import pods

log = logging.getLogger(__name__)

SCAN_SECONDS = 0.5
LineSink = Callable[[str, str, str], None]  # (workload, "stdout", line)


class PodLogs:
    """The log streams of the workloads given (`watch`), until `stop`."""

    def __init__(self, cluster: Cluster, on_line: LineSink) -> None:
        self.cluster = cluster
        self.on_line = on_line
        self._workloads: list[Applied] = []
        self._followed: set[tuple[str, str, int]] = set()  # (pod uid, container, restart count)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._scanner: threading.Thread | None = None

    def watch(self, workloads: Sequence[Applied]) -> None:
        """Follow these workloads' pods (from now on, besides those followed already)."""
        with self._lock:
            known = {w.key for w in self._workloads}
            self._workloads += [w for w in workloads if w.key not in known]
        if self._scanner is None:
            self._scanner = threading.Thread(target=self._scan, name="pod-logs", daemon=True)
            self._scanner.start()

    def _scan(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                workloads = list(self._workloads)
            for workload in workloads:
                try:
                    self._follow_new(workload)
                except Exception as exc:  # the API went away for a moment: the next scan tries again
                    log.debug("pod scan of %s failed: %s", workload.key, exc)
            self._stopping.wait(SCAN_SECONDS)

    def _follow_new(self, workload: Applied) -> None:
        body = get(self.cluster, workload)
        if body is None:
            return
        for pod in pods(self.cluster, workload, body):
            metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
            for container in status.get("containerStatuses") or ():
                state = container.get("state") or {}
                if "running" not in state and "terminated" not in state:
                    continue  # not started yet: no log to follow
                instance = (str(metadata.get("uid")), str(container["name"]), int(container.get("restartCount") or 0))
                if instance in self._followed:
                    continue
                self._followed.add(instance)
                threading.Thread(target=self._stream, args=(str(workload.key), metadata["namespace"],
                                                            metadata["name"], container["name"]),
                                 name=f"logs-{metadata['name']}", daemon=True).start()

    def _stream(self, workload: str, namespace: str, pod: str, container: str) -> None:
        rest = b""
        response: Any = None
        try:
            response = self.cluster.core.read_namespaced_pod_log(pod, namespace, container=container, follow=True,
                                                                 _preload_content=False)
            for data in response.stream(4096):
                if self._stopping.is_set():
                    break
                *lines, rest = (rest + data).split(b"\n")
                for line in lines:
                    self.on_line(workload, "stdout", line.decode("utf-8", "replace").rstrip("\r"))
        except Exception as exc:
            log.debug("log stream of %s/%s ended: %s", pod, container, exc)
        finally:
            if response is not None:
                response.release_conn()
        if rest and not self._stopping.is_set():
            self.on_line(workload, "stdout", rest.decode("utf-8", "replace"))

    def stop(self) -> None:
        self._stopping.set()
