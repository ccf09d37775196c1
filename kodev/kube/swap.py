"""In-pod swaps for `kodev watch -k`: kodev's supervisor runs each kodev container's app, and a new binary
reaches it over the container's stdin, through the Kubernetes API's `attach` — no shell, no `tar`, nothing
added to the app's image (ko's distroless images stay as `kodev resolve` pushes them).

`wire` changes only the copy kodev applies: an init container (the supervisor's own small image, pushed once
per session) copies the supervisor into an `emptyDir` at /kodev; each container that runs a kodev image runs
the supervisor instead, with its own command after `--`, and keeps stdin open (`stdinOnce: false`, so an
attach that ends leaves the supervisor listening for the next). `PodChannel` speaks the supervisor's
`binary SIZE\\n` + bytes protocol (kodev/supervisor/supervisor.go) over the attach's stdin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kodev.gotool import GoTool
from kodev.kube.connect import Cluster
from kodev.kube.objects import KO_SCHEME, pod_spec
from kodev.platform import Platform
from kodev.publish import Publisher
from kodev.supervisor_build import SUPERVISOR

log = logging.getLogger(__name__)

VOLUME = "kodev-swap"
DIRECTORY = "/kodev"
INIT_CONTAINER = "kodev-supervisor"
GRACE = "2s"
_FRAME_BYTES = 1 << 20  # a binary goes in frames of 1 MiB (one frame per binary would be held whole in memory)


def wire(body: dict[str, Any], read: Mapping[str, Any], apps: Mapping[str, str], supervisor: str) -> None:
    """Let the pods of `body` (the copy to apply; `read`: the object as read, its images still ko://) be
    swapped into: each container whose image was `ko://PATH` with PATH in `apps` (import path -> app name)
    runs kodev's supervisor (image `supervisor`) in front of its own command."""
    spec, original = pod_spec(body), pod_spec(read)
    if spec is None or original is None:
        return
    wired = False
    for container, before in zip(spec.get("containers") or (), original.get("containers") or (), strict=False):
        image = before.get("image")
        app = apps.get(image[len(KO_SCHEME):].rstrip("/")) if isinstance(image, str) and image.startswith(
            KO_SCHEME) else None
        if app is None:
            continue
        own = list(container.get("command") or [f"/ko-app/{app}"])  # its args stay its args
        container["command"] = [f"{DIRECTORY}/{SUPERVISOR}", "-bin", f"{DIRECTORY}/{app}", "-stdin", "-grace", GRACE,
                                "--", *own]
        container["stdin"], container["stdinOnce"] = True, False
        container["volumeMounts"] = [*(container.get("volumeMounts") or ()), {"name": VOLUME, "mountPath": DIRECTORY}]
        wired = True
    if not wired:
        return
    spec["volumes"] = [*(spec.get("volumes") or ()), {"name": VOLUME, "emptyDir": {}}]
    spec["initContainers"] = [{"name": INIT_CONTAINER, "image": supervisor,
                               "command": [f"/ko-app/{SUPERVISOR}", "-install", DIRECTORY],
                               "volumeMounts": [{"name": VOLUME, "mountPath": DIRECTORY}]},
                              *(spec.get("initContainers") or ())]


def swappable(pod: Mapping[str, Any], container: str) -> bool:
    """Whether `container` of `pod` runs kodev's supervisor and is running (a swap can reach it)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    wired = any(c.get("name") == container and (c.get("command") or [""])[0] == f"{DIRECTORY}/{SUPERVISOR}"
                for c in spec.get("containers") or ())
    running = any(c.get("name") == container and "running" in (c.get("state") or {})
                  for c in status.get("containerStatuses") or ())
    return wired and running


class PodChannel:
    """kodev's end of one container's stdin (an attach through the API), held for the session."""

    def __init__(self, cluster: Cluster, namespace: str, pod: str, container: str) -> None:
        from kubernetes.stream import stream

        self.pod, self.container = pod, container
        self.socket = stream(cluster.core.connect_get_namespaced_pod_attach, pod, namespace, container=container,
                             stdin=True, stdout=False, stderr=False, tty=False, _preload_content=False)

    def send(self, binary: Path) -> None:
        """Send a new binary: the supervisor renames it into place and restarts the app on it."""
        size = binary.stat().st_size
        self.socket.write_channel(0, f"binary {size}\n".encode())
        for chunk in _chunks(binary):
            self.socket.write_channel(0, chunk)

    @property
    def open(self) -> bool:
        return bool(self.socket.is_open())

    def close(self) -> None:
        try:
            self.socket.close()
        except Exception as exc:  # already closed by the other side
            log.debug("closing the attach of %s/%s: %s", self.pod, self.container, exc)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(_FRAME_BYTES):
            yield chunk


SUPERVISOR_IMPORT_PATH = "kodev.dev/supervisor"  # how the supervisor's image is named in the registry (md5 naming)


def supervisor_image(go: GoTool, platform: Platform, publisher: Publisher) -> str:
    """Push the supervisor's image (scratch, the binary at /ko-app/.supervisor) for the cluster's platform;
    its digest reference. Built once per Go version and platform (kodev's cache), pushed once per session:
    the registry skips the blobs it has."""
    from kodev.image.assemble import ImageSpec, assemble
    from kodev.image.base import scratch
    from kodev.image.kodata import kodata_layer
    from kodev.image.layers import binary_layer, cache_key
    from kodev.supervisor_build import build_supervisor

    binary = build_supervisor(go)
    digest = cache_key("supervisor", binary.name)  # the cache names it by Go version, platform and source
    image = assemble(scratch(), kodata_layer(None, binary.parent, 0), binary_layer(binary, digest, SUPERVISOR, 0),
                     ImageSpec(SUPERVISOR_IMPORT_PATH, SUPERVISOR, platform, 0, {}))
    return publisher.publish(image, f"{SUPERVISOR_IMPORT_PATH}:latest").ref
