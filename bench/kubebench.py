"""Scenario 12: edit → serving on a real Kubernetes cluster (issue 24): `kodev watch -k` swapping the binary into
the pod, `kodev watch -k --no-swap` rolling the Deployment out, and the ko loop (`ko apply` of the same
manifests on every save).

The cluster is the test suite's (tests/kube: etcd, the control plane and a kubelet on Debian's containerd, a
docker-registry the node pulls from, everything on 127.0.0.1), started once for the scenario. Each contender
has its own copy of examples/hello and its own namespace, with one Deployment: the server on the host network
(the cluster has no pod network) on a port of its own, `maxSurge: 0` (the old pod lets go of the port before
the new one binds it), a grace period of 2 s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench import lineup, tools
from bench.alternate import (
    Entry,
    alternate,
    breakdown_table,
    flags_text,
    part,
    problems,
    results_table,
    start_all,
    stop_all,
)
from bench.contenders import INITIAL_TEXT, HelloCopy, parse_result, wait_event
from bench.context import Context
from bench.measure import BenchError, Process, kodev_argv, median, wait_for_text
from bench.results import ScenarioResult, Target, millis
from bench.rivalmarks import KO_MARKS, stages
from bench.saveloop import SaveLoop

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 1
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 0, maxUnavailable: 1}}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: ko://example.com/hello/cmd/server
        args: ["-addr=127.0.0.1:{port}"]
"""
SWAP_WITHIN = 1.0  # issue 24: a binary-only edit served by the same pod within 1 s of the build finishing
KODEV_FLAGS = ("`kodev watch --json -k k8s/ --push REGISTRY/…` (server-side apply, field manager kodev); swap: the "
               "new binary sent to the pod's supervisor over attach, the image pushed after serving; --no-swap: "
               "the image pushed, then the Deployment's image set and its rollout waited for.")
KO_FLAGS = ("kodev's batching of saves on `*.go` and `kodata/` → `ko apply -f k8s/` (KO_DOCKER_REPO: the "
            "cluster's registry; ko builds, pushes and runs `kubectl apply`) → the Deployment rolls out on its own; "
            "the same `.ko.yaml` flags and base as scenario 1's ko loop; kubectl v1.34.4, built with the cluster.")


class _KubeCopy(HelloCopy):
    """A copy of examples/hello with k8s/web.yaml for its own namespace on the cluster."""

    def __init__(self, context: Context, label: str, cluster: Any) -> None:
        super().__init__(context, label)
        self.cluster = cluster
        self.namespace = f"{label}-{context.uid}".lower().replace("_", "-")
        manifests = self.module / "k8s"
        manifests.mkdir()
        (manifests / "web.yaml").write_text(DEPLOYMENT.format(namespace=self.namespace, port=self.port))
        self.env = {"KUBECONFIG": str(cluster.kubeconfig)}
        self.repo = f"{cluster.registry}/{label}"

    def create_namespace(self) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(str(self.cluster.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            core: Any = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": self.namespace}})
        finally:
            api.close()


class KubeKodev(_KubeCopy):
    def __init__(self, context: Context, label: str, cluster: Any, swap: bool) -> None:
        super().__init__(context, label, cluster)
        self.swap = swap
        self.process: Process | None = None

    def start(self, timeout: float = 300) -> float:
        self.create_namespace()
        argv = kodev_argv("watch", "--json", "-k", "k8s", "--push", self.repo, *([] if self.swap else ["--no-swap"]))
        self.process = Process(argv, self.module, env=self.env)
        self.context.processes.append(self.process)
        wait_for_text(self.port, INITIAL_TEXT, timeout=timeout)
        wait_event(self.process, "watching", timeout=timeout)
        return time.monotonic() - self.process.started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        assert self.process is not None
        mark = self.process.mark()
        started = time.monotonic()
        self.edit(token)
        try:
            served = wait_for_text(self.port, token, timeout=180)
            finished, _ = wait_event(self.process, "build.finished", mark=mark, timeout=60)
            _, result = wait_event(self.process, "command.result", mark=mark, timeout=180,
                                   where=lambda e: e["command"] == "server" and e["outcome"] == "rebuilt")
        except BenchError as exc:
            raise BenchError(f"{exc}\nkodev watch -k ({self.label}) printed:\n{self.process.tail()}") from None
        hows = [d["how"] for d in result["delivered"]]
        wanted = "swapped" if self.swap else "rolled-out"
        if hows != [wanted]:
            raise BenchError(f"kodev delivered {hows}, not [{wanted!r}]: {result}")
        parts = parse_result(result)
        if "load" in parts:
            parts["push"] = parts.pop("load")
        parts["rollout"] = sum(float(d["seconds"]) for d in result["delivered"]) if not self.swap else 0.0
        return served - started, {**parts, "build end → serving": served - finished.at}

    def stop(self) -> None:
        if self.process is not None:
            self.context.stop(self.process)
            self.process = None


class KoApplyLoop(_KubeCopy):
    """watchfiles -> `ko apply -f k8s/`; the Deployment then rolls out by itself."""

    def __init__(self, context: Context, label: str, cluster: Any, ko: Path, base: str, kubectl_dir: Path) -> None:
        super().__init__(context, label, cluster)
        from bench.rivals import inline_kodata_symlinks, ko_yaml

        self.ko = ko
        inline_kodata_symlinks(self.module / "cmd/server/kodata")
        (self.module / ".ko.yaml").write_text(ko_yaml())
        self.env.update({"KO_DOCKER_REPO": self.repo, "KO_DEFAULTBASEIMAGE": base, "KO_GO_PATH": context.go,
                         "PATH": f"{kubectl_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
        from bench.rivals import watched_by_the_loop

        self.loop = SaveLoop(self.module, self.run_once, watched_by_the_loop, "ko apply loop")

    def run_once(self) -> dict[str, float]:
        from bench.rivals import run_timed

        started = time.monotonic()
        applied, ended = run_timed([str(self.ko), "apply", "-f", "k8s"], self.module, self.env)
        if applied.popen.returncode != 0:
            raise BenchError(f"ko apply exited {applied.popen.returncode}:\n{applied.tail()}")
        marks = stages(applied.since(0, stream="stderr"), KO_MARKS, started, ended)
        return {"ko apply": ended - started, **{k: v for k, v in marks.items() if k != KO_MARKS.tail}}

    def start(self, timeout: float = 300) -> float:
        import watchfiles  # noqa: F401 - fail here, not in the thread

        self.create_namespace()
        started = time.monotonic()
        self.run_once()
        wait_for_text(self.port, INITIAL_TEXT, timeout=timeout)
        self.loop.start()
        return time.monotonic() - started

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        started, served, triggered, steps = self.loop.measure(lambda: self.edit(token), self.port, token, 180)
        applied = triggered + steps.get("ko apply", 0.0)
        return served - started, {"watcher": triggered - started, **steps, "rollout → serving": served - applied}

    def stop(self) -> None:
        self.loop.stop()


def _cluster(context: Context) -> tuple[Any, str]:
    """The test cluster, started for this scenario (stopped with the context), or why it cannot run."""
    try:
        from tests.kube import parts
        from tests.kube.cluster import Cluster

        parts.binaries()
        parts.packaged()
        cluster = Cluster(context.work / "cluster")
        context.stack.callback(cluster.stop)
        return cluster.start(context.go), ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def cluster_rollouts(context: Context) -> ScenarioResult:
    """Kubernetes: edit → serving in the cluster (kodev swap, kodev rollout, ko apply loop)"""
    result = ScenarioResult(
        12, "Kubernetes: edit → serving in the cluster (kodev swap, kodev rollout, ko apply loop)",
        "The one-line edit of scenario 1 (`cmd/server/main.go`), timed from the write until the server's pod "
        "serves the token on 127.0.0.1, alternating, each contender on its own copy of examples/hello and its "
        "own namespace of one real single-node cluster (tests/kube: Kubernetes v1.34.4 built from its module, "
        "Debian's etcd and containerd, a docker-registry the node pulls from). One Deployment each: host "
        "network, `maxSurge: 0`, grace period 2 s.")
    context.log("scenario 12: starting the test cluster")
    cluster, problem = _cluster(context)
    found = lineup.rivals(context, only=(tools.KO,))
    ko_problem = problem or found.problem(tools.KO)
    entries = [
        Entry("kodev watch -k (swap)", "kodev-swap", None if problem else (
            lambda: KubeKodev(context, "s12-swap", cluster, swap=True)), KODEV_FLAGS, error=problem),
        Entry("kodev watch -k --no-swap (rollout)", "kodev-rollout", None if problem else (
            lambda: KubeKodev(context, "s12-rollout", cluster, swap=False)), "", error=problem),
    ]
    if ko_problem:
        entries.append(Entry("ko apply loop", "ko", None, KO_FLAGS, error=ko_problem))
    else:
        from tests.kube import parts

        ko, base, kubectl_dir = found.path(tools.KO), found.registry.base, parts.binaries()  # type: ignore[union-attr]
        entries.append(Entry("ko apply loop", "ko", lambda: KoApplyLoop(
            context, "s12-ko", cluster, ko, base, kubectl_dir), KO_FLAGS))
    try:
        start_all(context, entries, "scenario 12")
        alternate(context, entries, "scenario 12")
    finally:
        stop_all(entries)
    result.setup += " " + flags_text(entries)
    result.tables.append(results_table(entries, first=True))
    result.tables.append(breakdown_table(entries))
    swap, rollout, ko_loop = entries
    after_build = part(swap, "build end → serving")
    result.targets.append(Target(f"kodev swap: the same pod serves the new build ≤ {SWAP_WITHIN * 1000:.0f} ms after "
                                 "its go build finished (median)", millis(after_build),
                                 None if after_build != after_build else after_build <= SWAP_WITHIN))
    for faster, slower in ((swap, ko_loop), (rollout, ko_loop), (swap, rollout)):
        if faster.values and slower.values:
            result.notes.append(f"{faster.name} / {slower.name}: "
                                f"{median(faster.series.values) / median(slower.series.values):.2f}x (medians).")
    result.notes.extend(problems(entries))
    return result
