"""The Kubernetes objects of `kodev watch -k` manifests: which are workloads, which kodev images each runs,
and the copy that is applied (its ko:// references as digest references). Pure: no cluster, no I/O.

Every document of every file is an object; a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
Pod) has a pod template whose containers may name `ko://IMPORT/PATH` images. The copy kodev applies is made
here and only here; the user's files are read, never written.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kodev.errors import ConfigError
from kodev.manifests import Manifest

KO_SCHEME = "ko://"
# The kinds whose pods kodev waits for; any other object is applied and not waited on.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod")
CONTAINER_LISTS = ("initContainers", "containers")


@dataclass(frozen=True)
class ObjectKey:
    """An object as the API names it (namespace None: the session's namespace, or a cluster-scoped object)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class KubeObject:
    """One document of a manifest: where it is, what it is, and the import paths its images name."""

    key: ObjectKey
    body: Mapping[str, Any]  # as read (ko:// references unresolved); never handed out to be changed
    origin: str  # FILE:DOCUMENT, for errors
    references: frozenset[str]  # import paths its ko:// strings name (images, or anywhere: ko resolves all)
    runs: frozenset[str]  # those its pods' containers run (a binary swap reaches these)

    @property
    def workload(self) -> bool:
        return self.key.kind in WORKLOAD_KINDS

    def resolved(self, refs: Mapping[str, str], namespace: str) -> dict[str, Any]:
        """The copy to apply: every ko:// image as `refs[import path]`, the namespace filled in when the
        object has none (a cluster-scoped kind ignores it: the API is asked per kind, see apply.py)."""
        body = _substituted(copy.deepcopy(dict(self.body)), refs)
        assert isinstance(body, dict)
        body.setdefault("metadata", {}).setdefault("namespace", namespace)
        return body


def _substituted(value: Any, refs: Mapping[str, str]) -> Any:
    """`value` with each ko:// string (anywhere, as ko resolves them) replaced by its digest reference."""
    if isinstance(value, dict):
        return {k: _substituted(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v, refs) for v in value]
    if isinstance(value, str) and value.startswith(KO_SCHEME) and _import_path(value) in refs:
        return refs[_import_path(value)]
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def read(manifests: Sequence[Manifest]) -> list[KubeObject]:
    """The objects of `manifests` (their YAML checked already), in order. A document without `kind`,
    `apiVersion` or `metadata.name` is an error naming its file and document."""
    import yaml

    found: list[KubeObject] = []
    seen: dict[ObjectKey, str] = {}
    for manifest in manifests:
        for number, document in enumerate(yaml.safe_load_all(manifest.text), 1):
            if document is None:
                continue
            origin = f"{manifest.path} (document {number})"
            key = _key(document, origin)
            if key in seen:
                raise ConfigError(f"{origin}: {key} is also defined in {seen[key]}. Keep one of them.")
            seen[key] = origin
            named = {_import_path(s) for s in _strings(document) if s.startswith(KO_SCHEME)}
            runs = {_import_path(c["image"]) for c in containers(document)
                    if isinstance(c.get("image"), str) and c["image"].startswith(KO_SCHEME)}
            found.append(KubeObject(key, document, origin, frozenset(named), frozenset(runs)))
    if not any(o.runs for o in found):
        names = ", ".join(str(m.path) for m in manifests)
        raise ConfigError(f"no workload in {names} runs a ko:// image: give a container `image: ko://IMPORT/PATH` "
                          "(e.g. ko://example.com/app/cmd/api) so that kodev knows what to build.")
    return found


def containers(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The containers (and init containers) of an object's pods: a Pod's own, a workload's template's, a
    CronJob's job template's."""
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return
    pod = _pod_spec(body.get("kind"), spec)
    if pod is None:
        return
    for field in CONTAINER_LISTS:
        for container in pod.get(field) or ():
            if isinstance(container, dict):
                yield container


def pod_spec(body: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = body.get("spec")
    return _pod_spec(body.get("kind"), spec) if isinstance(spec, dict) else None


def _pod_spec(kind: object, spec: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    found = template.get("spec") if isinstance(template, dict) else None
    return found if isinstance(found, dict) else None


def _key(document: object, origin: str) -> ObjectKey:
    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: not a Kubernetes object (a mapping with apiVersion, kind and metadata).")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    missing = [field for field, value in (("apiVersion", document.get("apiVersion")), ("kind", document.get("kind")),
                                          ("metadata.name", name)) if not isinstance(value, str) or not value]
    if missing:
        raise ConfigError(f"{origin}: no {', '.join(missing)}: kodev applies each document as a Kubernetes object. "
                          "Add the missing fields (or remove the document) and save again.")
    assert isinstance(metadata, dict)
    namespace = metadata.get("namespace")
    return ObjectKey(str(document["apiVersion"]), str(document["kind"]), str(name),
                     str(namespace) if namespace else None)


def _import_path(image: str) -> str:
    return image[len(KO_SCHEME):].rstrip("/")


def affected(objects: Sequence[KubeObject], import_paths: set[str]) -> list[KubeObject]:
    """The objects whose images include one of `import_paths` (a new digest there is a rollout)."""
    return [o for o in objects if o.references & import_paths]
