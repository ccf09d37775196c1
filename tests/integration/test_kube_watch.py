"""Issue 24: `kodev watch -k` on a real single-node cluster (tests/kube: etcd, kube-apiserver, the controller
manager, the scheduler and a kubelet on Debian's containerd, all on 127.0.0.1; images pulled from a real
docker-registry). Nothing here is faked.

examples/hello's two commands, each a Deployment on the host network: the whole set is applied once both
images are pushed; an edit of one command rolls out its Deployment alone (the other's pod is the same pod);
the pods' logs come prefixed by workload; a broken rollout is said and the loop goes on; Ctrl-C leaves the
workloads running, `--down` deletes exactly what kodev applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.json_events import Event, Events
from tests.integration.modules import Module, kodev_running, set_greeting, write
from tests.integration.process import free_port, wait_for_page, wait_until
from tests.kube.fixture import ClusterInfo

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  minReadySeconds: {min_ready}
  # one node, the host's network, a fixed port: the old pod must let go of it before the new one binds
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 0, maxUnavailable: 1}}}}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 2
      containers:
      - name: {name}
        image: ko://{module}/cmd/{command}
        args: [{args}]
"""


def _manifests(module: Module, port: int, hello_replicas: int = 1, min_ready: int = 0) -> Path:
    """k8s/: the server as Deployment `web` on `port`, the hello command as Deployment `hello` (it prints its
    greeting, then sleeps: a workload with no port, so it can have several pods on the one node)."""
    k8s = module.path / "k8s"
    write(k8s / "web.yaml", DEPLOYMENT.format(name="web", module=module.module_path, command="server",
                                              args=f'"-addr=127.0.0.1:{port}"', replicas=1,
                                              min_ready=min_ready))
    hello = module.path / "cmd/hello/main.go"
    source = hello.read_text()
    if "time.Sleep" not in source:  # a pod that exits would be restarted forever: keep it up after printing
        source = source.replace("import (", 'import (\n\t"time"', 1)
        hello.write_text(source.replace("\tos.Exit(*exitCode)", "\ttime.Sleep(time.Hour)\n\tos.Exit(*exitCode)"))
    write(k8s / "hello.yaml", DEPLOYMENT.format(name="hello", module=module.module_path, command="hello", args="",
                                                replicas=hello_replicas, min_ready=min_ready))
    return k8s


@pytest.fixture
def kube(kube_cluster: ClusterInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The cluster's API for the test's own checks (the kubernetes client, on the fixture's kubeconfig)."""
    from kubernetes import config

    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig))
    kubeconfig, context = str(kube_cluster.kubeconfig), kube_cluster.context
    api = config.new_client_from_config(kubeconfig, context=context)  # type: ignore[no-untyped-call]
    yield api
    api.close()


def _core(kube: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube)


def _namespace(kube: Any, module: Module) -> str:
    name = f"t{module.uid}"
    _core(kube).create_namespace({"metadata": {"name": name}})
    return name


def _pods(kube: Any, namespace: str, app: str) -> dict[str, str]:
    """The running pods of `app`: name -> "uid restarts=N" (the same pod, and its container never restarted)."""
    found = _core(kube).list_namespaced_pod(namespace, label_selector=f"app={app}").items
    def restarts(pod: Any) -> int:
        return sum(c.restart_count for c in pod.status.container_statuses or [])
    return {p.metadata.name: f"{p.metadata.uid} restarts={restarts(p)}"
            for p in found if p.metadata.deletion_timestamp is None}


def _deployments(kube: Any, namespace: str) -> list[str]:
    from kubernetes import client

    apps: Any = client.AppsV1Api(kube)
    return sorted(d.metadata.name for d in apps.list_namespaced_deployment(namespace).items)


def _delivered(events: Events, since: int, how: str) -> list[Event]:
    return events.all("delivered", lambda e: e["how"] == how, since=since)


def _started(events: Events, kube_cluster: ClusterInfo, namespace: str, port: int) -> None:
    """The first round: both images pushed, then every object applied at once and rolled out."""
    applied = events.wait("kube.applied", timeout=180)
    assert sorted(applied["objects"]) == ["deployment/hello", "deployment/web"]
    assert applied["namespace"] == namespace and applied["context"] == kube_cluster.context
    rolled = events.wait("kube.rolled_out", timeout=180)
    assert sorted(rolled["objects"]) == ["deployment/hello", "deployment/web"]
    for result in events.all("command.result"):
        assert result["outcome"] == "built" and result["load_seconds"] is not None
        assert [d["how"] for d in result["delivered"]] == ["deferred"]
        assert result["ref"].startswith(f"{kube_cluster.registry}/dev/") and "@sha256:" in result["ref"]
    assert "Hello" in wait_for_page(f"http://127.0.0.1:{port}/", "Hello", timeout=60)
    events.wait("service.log", match=lambda e: e["service"] == "deployment/web" and "listening" in e["line"])
    events.wait("service.log", match=lambda e: e["service"] == "deployment/hello" and "Hello" in e["line"])


def _edit_server_log(mod: Module, word: str) -> None:
    server = mod.path / "cmd/server/main.go"
    server.write_text(server.read_text().replace('log.Printf("', f'log.Printf("{word} ', 1))


def test_watch_k_swaps_a_new_binary_into_the_pods_and_rolls_out_a_kodata_change(
        mod: Module, kube_cluster: ClusterInfo, kube: Any) -> None:
    """The default: the pods run kodev's supervisor (added to the applied copy only), and a binary-only change
    goes into them over attach — the same pods, no rollout; a kodata change is a rollout to the new image."""
    port = free_port()
    k8s = _manifests(mod, port, hello_replicas=2)  # a swap reaches every pod of a workload
    before = {p.name: p.read_text() for p in k8s.iterdir()}
    namespace = _namespace(kube, mod)
    args = ["watch", "--json", "-k", str(k8s), "--push", f"{kube_cluster.registry}/dev", "-n", namespace]
    with kodev_running(mod, args) as (_proc, events):
        _started(events, kube_cluster, namespace, port)
        web_pods, hello_pods = _pods(kube, namespace, "web"), _pods(kube, namespace, "hello")
        assert len(web_pods) == 1 and len(hello_pods) == 2

        since = events.mark()
        _edit_server_log(mod, "swapped")
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt")
        assert [(d["service"], d["how"]) for d in result["delivered"]] == [("deployment/web", "swapped")]
        assert result["load_seconds"] > 0  # pushed after serving: the next rollout's image
        events.wait("service.log", since=since,
                    match=lambda e: e["service"] == "deployment/web" and "swapped server listening" in e["line"])
        assert _pods(kube, namespace, "web") == web_pods and _pods(kube, namespace, "hello") == hello_pods
        assert not events.all("command.result", lambda e: e["command"].endswith("hello"), since=since)

        since = events.mark()
        set_greeting(mod, "Bonjour")  # shared by both commands: both swapped, the same pods still
        for command in ("server", "hello"):
            def rebuilt(e: Event, c: str = command) -> bool:
                return bool(e["command"].endswith(c) and e["outcome"] == "rebuilt")
            events.wait("command.result", since=since, timeout=180, match=rebuilt)
        assert sorted(e["service"] for e in _delivered(events, since, "swapped")) == [
            "deployment/hello", "deployment/web"]
        assert "Bonjour" in wait_for_page(f"http://127.0.0.1:{port}/", "Bonjour", timeout=10)
        assert _pods(kube, namespace, "web") == web_pods and _pods(kube, namespace, "hello") == hello_pods
        for pod in hello_pods:  # each of the two pods' one container ran the new build, in place
            def greeted(name: str = pod) -> bool:
                return "Bonjour" in _core(kube).read_namespaced_pod_log(name, namespace)
            wait_until(greeted, 10, f"{pod} did not print the new greeting")

        since = events.mark()
        page = mod.path / "cmd/server/kodata/index.html"
        page.write_text(page.read_text().replace("<h1>", "<h1>kodata edited: "))
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt")
        assert [(d["service"], d["how"]) for d in result["delivered"]] == [("deployment/web", "rolled-out")]
        assert result["delivered"][0]["seconds"] > 0 and result["go_seconds"] is None
        new_web = _pods(kube, namespace, "web")
        assert len(new_web) == 1 and new_web != web_pods  # a new pod, from the new image: kodata and binary
        assert "kodata edited: Bonjour" in wait_for_page(f"http://127.0.0.1:{port}/", "kodata edited: Bonjour",
                                                         timeout=10)

        since = events.mark()  # the pod the rollout made is swapped into as well
        _edit_server_log(mod, "again")
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt")
        assert [d["how"] for d in result["delivered"]] == ["swapped"]
        assert _pods(kube, namespace, "web") == new_web

        # A pod replaced behind kodev's back runs the image, not the swapped binary: the next change reaches it
        # by a rollout (a swap would leave a pod running an older build than its siblings).
        (replaced,) = new_web
        _core(kube).delete_namespaced_pod(replaced, namespace)
        wait_until(lambda: len(_pods(kube, namespace, "web")) == 1 and replaced not in _pods(kube, namespace, "web"),
                   60, "the Deployment did not replace the deleted pod")
        since = events.mark()
        _edit_server_log(mod, "replaced")
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt")
        assert [d["how"] for d in result["delivered"]] == ["rolled-out"]
        events.wait("service.log", since=since,
                    match=lambda e: e["service"] == "deployment/web" and "replaced again" in e["line"])
    # Ctrl-C (kodev_running asserts exit 0): left running, as `ko apply` leaves them
    assert _deployments(kube, namespace) == ["hello", "web"]
    assert "Bonjour" in wait_for_page(f"http://127.0.0.1:{port}/", "Bonjour", timeout=10)
    assert {p.name: p.read_text() for p in k8s.iterdir()} == before  # the user's YAML is never written
    _core(kube).delete_namespace(namespace)


def test_watch_k_no_swap_rolls_out_only_the_edited_workload(
        mod: Module, kube_cluster: ClusterInfo, kube: Any) -> None:
    port = free_port()
    k8s = _manifests(mod, port)
    namespace = _namespace(kube, mod)
    args = ["watch", "--json", "--no-swap", "-k", str(k8s), "--push", f"{kube_cluster.registry}/dev",
            "-n", namespace]
    with kodev_running(mod, args) as (_proc, events):
        _started(events, kube_cluster, namespace, port)
        web_pods, hello_pods = _pods(kube, namespace, "web"), _pods(kube, namespace, "hello")
        since = events.mark()
        _edit_server_log(mod, "edited")
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt")
        assert [(d["service"], d["how"]) for d in result["delivered"]] == [("deployment/web", "rolled-out")]
        assert result["go_seconds"] > 0 and result["load_seconds"] > 0 and result["delivered"][0]["seconds"] > 0
        assert not events.all("command.result", lambda e: e["command"].endswith("hello"), since=since)
        events.wait("service.log", since=since,
                    match=lambda e: e["service"] == "deployment/web" and "edited server listening" in e["line"])
        new_web = _pods(kube, namespace, "web")
        assert len(new_web) == 1 and not set(new_web.values()) & set(web_pods.values())  # a new pod, Ready
        assert _pods(kube, namespace, "hello") == hello_pods  # not rolled: the same pod
        assert "Hello" in wait_for_page(f"http://127.0.0.1:{port}/", "Hello", timeout=10)

        since, web_pods = events.mark(), new_web
        set_greeting(mod, "Hallo")  # the package both import: both rolled out, each to a new pod
        for command in ("server", "hello"):
            def rebuilt(e: Event, c: str = command) -> bool:
                return bool(e["command"].endswith(c) and e["outcome"] == "rebuilt")
            result = events.wait("command.result", since=since, timeout=180, match=rebuilt)
            assert [d["how"] for d in result["delivered"]] == ["rolled-out"]
        assert not set(_pods(kube, namespace, "web").values()) & set(web_pods.values())
        assert not set(_pods(kube, namespace, "hello").values()) & set(hello_pods.values())
        assert "Hallo" in wait_for_page(f"http://127.0.0.1:{port}/", "Hallo", timeout=10)
        events.wait("service.log", since=since,
                    match=lambda e: e["service"] == "deployment/hello" and "Hallo" in e["line"])

        since = events.mark()  # the manifest itself edited: read again, applied, rolled out
        web_yaml = k8s / "web.yaml"
        web_yaml.write_text(web_yaml.read_text().replace("metadata: {labels: {app: web}}",
                                                         'metadata: {labels: {app: web, edited: "yes"}}'))
        wait_until(lambda: _pods(kube, namespace, "web,edited=yes"), 120, "the edited manifest was not rolled out")
        assert "Hallo" in wait_for_page(f"http://127.0.0.1:{port}/", "Hallo", timeout=30)
        assert not events.all("error", since=since)
    _core(kube).delete_namespace(namespace)


def test_a_compile_error_leaves_the_pods_a_crash_is_said_and_down_deletes_only_what_kodev_applied(
        mod: Module, kube_cluster: ClusterInfo, kube: Any) -> None:
    port = free_port()
    # A pod counts as available once it has run for minReadySeconds: without it a build that exits at once
    # could be seen Ready for an instant and reported rolled out (as `kubectl rollout status` would).
    k8s = _manifests(mod, port, min_ready=2)
    (k8s / "hello.yaml").unlink()
    namespace = _namespace(kube, mod)
    theirs = {"metadata": {"name": "not-kodevs"}, "data": {"a": "1"}}
    _core(kube).create_namespaced_config_map(namespace, theirs)
    # The manifests and the namespace from kodev.toml's [kubernetes] this time, not from the command line.
    with (mod.path / "kodev.toml").open("a") as config:
        config.write(f'\n[kubernetes]\nmanifests = ["k8s"]\nnamespace = "{namespace}"\n')
    args = ["watch", "--json", "--no-swap", "-k", "--push", f"{kube_cluster.registry}/dev", "--down"]
    server = mod.path / "cmd/server/main.go"
    with kodev_running(mod, args) as (_proc, events):
        assert events.wait("kube.applied", timeout=180)["namespace"] == namespace
        assert events.wait("kube.rolled_out", timeout=180)["objects"] == ["deployment/web"]
        wait_for_page(f"http://127.0.0.1:{port}/", "Hello", timeout=60)
        pods = _pods(kube, namespace, "web")

        since = events.mark()
        good = server.read_text()
        server.write_text(good.replace("func main() {", "func main() {\n\tundefinedName()", 1))
        events.wait("build.failed", since=since, timeout=120)
        assert not events.all("command.result", since=since)  # nothing published, nothing rolled out
        assert _pods(kube, namespace, "web") == pods
        assert "Hello" in wait_for_page(f"http://127.0.0.1:{port}/", "Hello", timeout=10)

        since = events.mark()  # builds, then exits at once: CrashLoopBackOff
        server.write_text(good.replace("func main() {", 'func main() {\n\tlog.Fatal("refusing to start")', 1))
        error = events.wait("error", since=since, timeout=180)
        assert error["kind"] == "RolloutError" and not error["fatal"], error
        assert "deployment/web" in error["message"] and "CrashLoopBackOff" in error["message"], error
        events.wait("service.log", since=since,
                    match=lambda e: e["service"] == "deployment/web" and "refusing to start" in e["line"])

        since = events.mark()
        server.write_text(good)
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("server") and e["outcome"] == "rebuilt")
        assert [d["how"] for d in result["delivered"]] == ["rolled-out"]
        assert "Hello" in wait_for_page(f"http://127.0.0.1:{port}/", "Hello", timeout=30)
    wait_until(lambda: _deployments(kube, namespace) == [], 30, "--down left the deployment")
    names = [c.metadata.name for c in _core(kube).list_namespaced_config_map(namespace).items]
    assert "not-kodevs" in names  # never kodev's to delete
    _core(kube).delete_namespace(namespace)


def test_a_namespace_that_does_not_exist_is_said_and_nothing_is_applied(
        mod: Module, kube_cluster: ClusterInfo, kube: Any) -> None:
    import json

    from tests.integration.conftest import run_kodev

    k8s = _manifests(mod, free_port())
    missing = f"missing-{mod.uid}"
    done = run_kodev(["watch", "--json", "-k", str(k8s), "--push", f"{kube_cluster.registry}/dev", "-n", missing],
                     mod.path)  # KUBECONFIG: the `kube` fixture's
    events = [json.loads(line) for line in done.stdout.splitlines()]
    errors = [e for e in events if e["event"] == "error"]
    assert done.returncode == 1 and errors and errors[-1]["fatal"], done.stdout + done.stderr
    assert f"kubectl create namespace {missing}" in errors[-1]["message"], errors[-1]
    assert not [e for e in events if e["event"] == "kube.applied"]
    assert missing not in [n.metadata.name for n in _core(kube).list_namespace().items]  # never created


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {{app: solo}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: solo
    image: ko://{module}/cmd/hello
"""


def test_a_bare_pod_is_rolled_out_by_its_image_in_place(mod: Module, kube_cluster: ClusterInfo, kube: Any) -> None:
    """A Pod's image can be changed where it stands: the kubelet restarts its container with the new image, and
    the rollout is done when the container status names it (containerd names it in `imageID`)."""
    k8s = _manifests(mod, free_port())
    (k8s / "web.yaml").unlink()
    (k8s / "hello.yaml").unlink()
    write(k8s / "solo.yaml", POD.format(module=mod.module_path))
    namespace = _namespace(kube, mod)
    args = ["watch", "--json", "--no-swap", "-k", str(k8s), "--push", f"{kube_cluster.registry}/dev", "-n", namespace]
    with kodev_running(mod, args) as (_proc, events):
        assert events.wait("kube.rolled_out", timeout=180)["objects"] == ["pod/solo"]
        (uid,) = [value.split()[0] for value in _pods(kube, namespace, "solo").values()]
        since = events.mark()
        set_greeting(mod, "Hej")
        result = events.wait("command.result", since=since, timeout=180,
                             match=lambda e: e["command"].endswith("hello") and e["outcome"] == "rebuilt")
        assert [(d["service"], d["how"]) for d in result["delivered"]] == [("pod/solo", "rolled-out")]
        events.wait("service.log", since=since, match=lambda e: e["service"] == "pod/solo" and "Hej" in e["line"])
        assert _pods(kube, namespace, "solo") == {"solo": f"{uid} restarts=1"}  # the same pod, its container anew
    _core(kube).delete_namespace(namespace)
