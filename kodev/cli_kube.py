"""What `kodev watch -k` does once its options are parsed: the manifests read, the cluster reached, the loop run.

Images go to the registry only (`--push REPO`, else KO_DOCKER_REPO, else kodev.toml's `[publish] repo`):
the cluster pulls them from there by digest. The Docker daemon still serves base images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kodev.publish.registry import PushSettings
    from kodev.session import Session

KIND_LOCAL = "kind.local"


@dataclass(frozen=True)
class KubeFlags:
    """`kodev watch -k`'s own flags (None: kodev.toml's `[kubernetes]`, else the kubeconfig's choice)."""

    context: str | None = None
    namespace: str | None = None
    take_down: bool = False


def kube_push(repo: str | None, config_path: Path | None) -> PushSettings:
    """Where `kodev watch -k` pushes: --push, KO_DOCKER_REPO or `[publish] repo`; one is needed."""
    from kodev.cli_watch import default_repo, push_flags
    from kodev.errors import ConfigError

    chosen = repo or default_repo(config_path)
    if chosen == KIND_LOCAL or (chosen or "").startswith(KIND_LOCAL + "/"):
        raise ConfigError("--push kind.local (loading images into a kind cluster's nodes) is not supported yet: push "
                          "to a registry the cluster pulls from (e.g. kind's local-registry set-up, --push "
                          "localhost:5001/dev).")
    if chosen is None:
        raise ConfigError("kodev watch -k pushes the images its manifests' ko:// references name, and no registry is "
                          "named: give --push REPO (one the cluster pulls from, e.g. 127.0.0.1:5000/dev), or set "
                          "KO_DOCKER_REPO, or `[publish] repo` in kodev.toml.")
    pushing = push_flags(chosen, False, False, False, [], [])
    assert pushing is not None
    return pushing


def watch_kube(session: Session, paths: Sequence[str], flags: KubeFlags, swap: bool) -> int:
    """`kodev watch -k [PATH...]`: apply the manifests (PATHs, else `[kubernetes] manifests`), then roll out
    each object whose images a save changed (`swap`: a binary-only change goes into the pods in place)."""
    from kodev import manifests
    from kodev.errors import ConfigError
    from kodev.kube import objects
    from kodev.kube.connect import connect
    from kodev.kube.stack import KubeStack
    from kodev.session import CommandServices
    from kodev.watch import DevLoop

    table = session.config.kubernetes
    files = [Path(p) for p in paths] or [session.config.root / m for m in table.manifests]
    if not files:
        raise ConfigError(f"kodev watch -k: no manifests named. Give them (kodev watch -k config/), or list them in "
                          f"{session.config.describe()} as `[kubernetes] manifests = [\"config/\"]`.")
    read = manifests.collect(files)
    found = objects.read(read)
    where = manifests.origins(read)
    plans = session.plan(list(where), where)  # an error names the FILE:LINE of the reference at fault
    cluster = connect(flags.context or table.context, flags.namespace or table.namespace)
    target = cluster.target
    session.ui.info(f"kubernetes: context {target.context} at {target.server}, namespace {target.namespace}")
    swapping = None
    if swap:
        from kodev.kube.stack import Swapping
        from kodev.kube.swap import supervisor_image

        supervisor = supervisor_image(session.go, session.platform, session.publisher)
        swapping = Swapping(supervisor, {p.command.import_path: p.command.app_name for p in plans})
    stack = KubeStack(cluster, found, files, flags.take_down, float(table.rollout_timeout), swapping)
    try:
        return DevLoop(session, [CommandServices(plan) for plan in plans], prefix_logs=True, swap=False,
                       kube=stack).run()
    finally:
        cluster.close()
