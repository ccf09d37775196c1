"""Which cluster `kodev watch -k` talks to: the kubeconfig and context as kubectl reads them.

`KUBECONFIG` (several files, merged in order, as kubectl does) or `~/.kube/config`; the context given, else
the current one; the namespace given, else the context's, else `default`. Through the `kubernetes` Python
client, which reads the same files the same way (exec and token plugins included).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from kodev.errors import ConfigError, KodevError

DEFAULT_KUBECONFIG = "~/.kube/config"


class KubeError(KodevError):
    """The cluster refused something, or could not be reached."""


@dataclass(frozen=True)
class Target:
    """The cluster of this session, as the user named it (for messages) and as the client reaches it."""

    kubeconfig: str  # the file(s) read, as KUBECONFIG lists them
    context: str
    namespace: str
    server: str


class Cluster:
    """One API connection for the session; the typed APIs and the dynamic client (for apply) share it."""

    def __init__(self, api_client: Any, target: Target) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.target = target
        self.core = client.CoreV1Api(api_client)
        self._dynamic: Any = None

    @property
    def dynamic(self) -> Any:
        """The dynamic client (discovery: the API's kinds and their plural names), made once, when applying."""
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            self._dynamic = DynamicClient(self.api_client)  # type: ignore[no-untyped-call]
        return self._dynamic

    def close(self) -> None:
        self.api_client.close()


def connect(context: str | None, namespace: str | None) -> Cluster:
    """The cluster the kubeconfig's `context` (default: its current context) points at, checked to answer."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    files = os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    paths = [os.path.expanduser(p) for p in files.split(os.pathsep) if p]
    if not any(os.path.isfile(p) for p in paths):
        raise ConfigError(f"no kubeconfig at {files} (KUBECONFIG, else {DEFAULT_KUBECONFIG}): kodev watch -k reads "
                          "the cluster's address and credentials from it, as kubectl does. Point KUBECONFIG at "
                          "your cluster's kubeconfig (e.g. `kind get kubeconfig > FILE`) and run again.")
    try:
        contexts, current = config.list_kube_config_contexts(files)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError) as exc:
        raise ConfigError(f"{files}: not a usable kubeconfig ({exc}). Check it with `kubectl config view`.") from None
    names = [c["name"] for c in contexts]
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    if chosen is None:
        raise ConfigError(f"--context {context}: no such context in {files} (it has {', '.join(names) or 'none'}). "
                          "Give one of those (kubectl config get-contexts lists them).")
    name = chosen["name"]
    namespace = namespace or chosen.get("context", {}).get("namespace") or "default"
    configuration = client.Configuration()
    try:
        config.load_kube_config(files, context=name, client_configuration=configuration, persist_config=False)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError) as exc:
        raise ConfigError(f"{files}: context {name} cannot be used ({exc}). Check it with "
                          f"`kubectl --context {name} get ns`.") from None
    cluster = Cluster(client.ApiClient(configuration), Target(files, name, namespace, configuration.host))
    try:
        client.VersionApi(cluster.api_client).get_code(_request_timeout=10)
    except Exception as exc:  # urllib3's connection errors, or the API's refusal (401, 403)
        cluster.close()
        raise KubeError(f"the cluster of context {name} ({configuration.host}) does not answer: {reason(exc)}. "
                        "Check that it runs (kubectl cluster-info) and that the kubeconfig's credentials are "
                        "current.") from None
    return cluster


def reason(exc: BaseException) -> str:
    """A client error in a few words: the API's status and message, or the connection error's last line."""
    status = getattr(exc, "status", None)
    if status is not None:
        import json

        try:
            message = json.loads(getattr(exc, "body", "") or "{}").get("message")
        except ValueError:
            message = None
        return f"HTTP {status} {message or getattr(exc, 'reason', '')}".strip()
    cause = getattr(exc, "reason", None)  # urllib3's MaxRetryError wraps the connection's own error
    text = str(cause if isinstance(cause, BaseException) else exc).strip()
    found = re.search(r"\[Errno -?\d+\] ([^'\")(]+)", text) or re.search(r"\[SSL: \w+\] ([^'\")(]+)", text)
    if found:  # "connection refused", "certificate verify failed: …", not the pool's repr around it
        return found.group(1).strip().rstrip(".")
    lines = text.splitlines()
    return lines[-1] if lines else type(exc).__name__

