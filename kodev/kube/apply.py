"""Server-side apply of the objects kodev owns (field manager `kodev`), and their deletion for `--down`.

Through the dynamic client: the API's discovery says each kind's plural and whether it is namespaced, so any
kind (CRDs included) is applied as kubectl would. `force`: kodev's copy wins fields another manager set (a
`kubectl edit` of the image) — kodev applies what the user's YAML says, which is what the user edits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kodev.errors import ConfigError
from kodev.kube.connect import Cluster, KubeError, reason
from kodev.kube.objects import KubeObject, ObjectKey

FIELD_MANAGER = "kodev"


@dataclass(frozen=True)
class Applied:
    """An object as the API stored it: where, and the generation a rollout of it must reach."""

    key: ObjectKey
    namespace: str | None  # None: cluster-scoped
    generation: int
    uid: str


def apply(cluster: Cluster, thing: KubeObject, body: dict[str, Any]) -> Applied:
    """Apply `body` (the resolved copy of `thing`)."""
    resource = _resource(cluster, thing)
    namespace = body["metadata"]["namespace"] if resource.namespaced else None
    if not resource.namespaced:
        body["metadata"].pop("namespace", None)
    try:
        stored = cluster.dynamic.server_side_apply(resource, body=body, namespace=namespace,
                                                   field_manager=FIELD_MANAGER, force_conflicts=True)
    except Exception as exc:  # the API's refusal (ApiException: 422 invalid, 403...) or a connection error
        said = reason(exc)
        if getattr(exc, "status", None) == 404 and f'namespaces "{namespace}" not found' in said:
            hint = (f"Create the namespace first (kubectl create namespace {namespace}), or name another one: "
                    "-n/--namespace, `[kubernetes] namespace`, or the object's metadata.namespace.")
        else:
            hint = "Fix the manifest; what runs keeps running."
        raise KubeError(f"{thing.origin}: the cluster refused {thing.key}: {said}. {hint}") from None
    metadata = stored.metadata
    return Applied(thing.key, namespace, int(metadata.generation or 0), str(metadata.uid))


def get(cluster: Cluster, applied: Applied) -> dict[str, Any] | None:
    """The object as it is now (None: gone)."""
    from kubernetes.client.exceptions import ApiException

    resource = cluster.dynamic.resources.get(api_version=applied.key.api_version, kind=applied.key.kind)
    try:
        found = resource.get(name=applied.key.name, namespace=applied.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(found.to_dict())


def delete(cluster: Cluster, applied: Applied) -> bool:
    """Delete an object kodev applied (background propagation: its pods go with it); False: it was gone,
    or it is no longer the object kodev applied (same name, another uid: someone made it again)."""
    from kubernetes.client.exceptions import ApiException

    resource = cluster.dynamic.resources.get(api_version=applied.key.api_version, kind=applied.key.kind)
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
            "preconditions": {"uid": applied.uid}}
    try:
        resource.delete(name=applied.key.name, namespace=applied.namespace, body=body)
    except ApiException as exc:
        if exc.status in (404, 409):  # gone, or its uid differs: not ours to delete
            return False
        raise KubeError(f"could not delete {applied.key}: {reason(exc)}") from None
    return True


def _resource(cluster: Cluster, thing: KubeObject) -> Any:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    try:
        return cluster.dynamic.resources.get(api_version=thing.key.api_version, kind=thing.key.kind)
    except ResourceNotFoundError:
        raise ConfigError(f"{thing.origin}: the cluster has no kind {thing.key.kind} in {thing.key.api_version}. "
                          "Check apiVersion and kind (kubectl api-resources lists them), or install the CRD "
                          "first.") from None
    except Exception as exc:
        raise KubeError(f"could not read the cluster's kinds (for {thing.origin}): {reason(exc)}") from None
