"""The pure parts of `kodev watch -k`: which objects name which images, the copy applied, when a rollout is
done or stuck, and the `[kubernetes]` table. (The cluster itself: tests/integration/test_kube_watch.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kodev import config as config_stage
from kodev.errors import ConfigError
from kodev.kube import objects
from kodev.kube.rollout import of_template, pod_trouble, progress, selector
from kodev.manifests import collect

APP = """\
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
# the api
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers:
      - {name: migrate, image: "ko://example.com/app/cmd/migrate"}
      containers:
      - name: api
        image: ko://example.com/app/cmd/api
        env: [{name: WORKER_IMAGE, value: "ko://example.com/app/cmd/worker"}]
      - {name: sidecar, image: "nginx:1"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ops}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: "ko://example.com/app/cmd/worker"}]
"""


@pytest.fixture
def read(tmp_path: Path) -> list[objects.KubeObject]:
    (tmp_path / "app.yaml").write_text(APP)
    return objects.read(collect([tmp_path]))


def test_each_document_is_an_object_with_the_images_its_pods_run(read: list[objects.KubeObject]) -> None:
    assert [str(o.key) for o in read] == ["namespace/dev", "deployment/api", "cronjob/nightly"]
    namespace, api, nightly = read
    assert not namespace.workload and namespace.references == frozenset()
    assert api.workload and not nightly.workload  # a CronJob's pods come later: nothing to wait for
    assert api.runs == {"example.com/app/cmd/api", "example.com/app/cmd/migrate"}
    # a ko:// string outside an image (an env value) is resolved too, as ko does, but nothing runs it
    assert api.references == api.runs | {"example.com/app/cmd/worker"}
    assert nightly.runs == {"example.com/app/cmd/worker"} and nightly.key.namespace == "ops"
    assert [str(o.key) for o in objects.affected(read, {"example.com/app/cmd/worker"})] == [
        "deployment/api", "cronjob/nightly"]


def test_the_applied_copy_has_digests_and_a_namespace_and_the_read_one_is_untouched(
        read: list[objects.KubeObject]) -> None:
    api = read[1]
    refs = {p: f"127.0.0.1:5000/{p.rsplit('/', 1)[1]}@sha256:{'a' * 64}" for p in api.references}
    body = api.resolved(refs, "dev")
    template = body["spec"]["template"]["spec"]
    assert template["containers"][0]["image"] == refs["example.com/app/cmd/api"]
    assert template["containers"][0]["env"][0]["value"] == refs["example.com/app/cmd/worker"]
    assert template["initContainers"][0]["image"] == refs["example.com/app/cmd/migrate"]
    assert template["containers"][1]["image"] == "nginx:1"
    assert body["metadata"]["namespace"] == "dev"
    assert api.body["spec"]["template"]["spec"]["containers"][0]["image"] == "ko://example.com/app/cmd/api"
    assert "namespace" not in api.body["metadata"]
    assert read[2].resolved({"example.com/app/cmd/worker": "r"}, "dev")["metadata"]["namespace"] == "ops"


@pytest.mark.parametrize(("text", "fault"), [
    ("kind: Pod\nmetadata: {name: x}\n", "no apiVersion"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "no metadata.name"),
    ("- a\n- b\n", "not a Kubernetes object"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "no workload"),
])
def test_documents_kodev_cannot_apply_are_named(tmp_path: Path, text: str, fault: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=fault) as caught:
        objects.read(collect([tmp_path / "bad.yaml"]))
    assert "bad.yaml" in str(caught.value)


def test_the_same_object_twice_is_an_error(tmp_path: Path) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: ko://x.com/a}]}\n"
    (tmp_path / "one.yaml").write_text(pod)
    (tmp_path / "two.yaml").write_text(pod)
    with pytest.raises(ConfigError, match=r"two.yaml \(document 1\): pod/p is also defined in .*one.yaml"):
        objects.read(collect([tmp_path]))


def _deployment(generation: int = 2, **status: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"replicas": 2},
            "status": {"observedGeneration": generation, **status}}


@pytest.mark.parametrize(("status", "done", "waiting"), [
    ({"observedGeneration": 1}, False, "the controller"),
    ({"updatedReplicas": 1, "replicas": 2, "availableReplicas": 2}, False, "1 of 2 new pods"),
    ({"updatedReplicas": 2, "replicas": 3, "availableReplicas": 2}, False, "1 old pods to go"),
    ({"updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}, False, "1 of 2 new pods ready"),
    ({"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}, True, ""),
])
def test_a_deployment_has_rolled_out_when_kubectl_says_so(status: dict[str, Any], done: bool, waiting: str) -> None:
    found = progress(_deployment(**status), 2)
    assert found.done is done and waiting in found.waiting_for


def test_a_pod_has_rolled_out_when_each_container_runs_its_new_image_and_is_ready() -> None:
    new = "127.0.0.1:5000/api@sha256:" + "b" * 64
    pod: dict[str, Any] = {"kind": "Pod", "spec": {"containers": [{"name": "api", "image": new}]}, "status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "api", "image": "127.0.0.1:5000/api@sha256:" + "a" * 64, "ready": True}]}}
    assert not progress(pod, 1).done  # still the old container: Ready until the kubelet restarts it
    pod["status"]["containerStatuses"][0]["image"] = new
    assert progress(pod, 1).done
    pod["status"]["containerStatuses"][0]["ready"] = False
    assert progress(pod, 1).waiting_for == "container api to be ready"
    # containerd (1.6, the test cluster's) reports the image's own ID as `image`, the pulled reference as `imageID`
    pod["status"]["containerStatuses"][0].update(image="sha256:" + "c" * 64, imageID=new, ready=True)
    assert progress(pod, 1).done
    pod["status"]["containerStatuses"][0]["imageID"] = "127.0.0.1:5000/api@sha256:" + "a" * 64
    assert not progress(pod, 1).done


def test_a_pod_that_cannot_pull_or_keeps_crashing_is_said_at_once() -> None:
    def pod(reason: str) -> dict[str, Any]:
        return {"metadata": {"name": "api-1"}, "status": {"containerStatuses": [
            {"name": "api", "state": {"waiting": {"reason": reason, "message": "back-off 10s"}}}]}}

    assert pod_trouble([pod("ContainerCreating")]) is None
    assert pod_trouble([pod("ImagePullBackOff")]) == "pod api-1: container api is ImagePullBackOff (back-off 10s)"
    assert "CrashLoopBackOff" in (pod_trouble([pod("ContainerCreating"), pod("CrashLoopBackOff")]) or "")


def test_only_the_pods_of_the_current_template_can_fail_a_rollout() -> None:
    """A fix saved while the previous build crash-loops: the crashing pod runs the old image and is on its way
    out; it says nothing about the rollout of the fix (the failure seen once in CI)."""
    fixed, broken = "127.0.0.1:5000/web@sha256:" + "a" * 64, "127.0.0.1:5000/web@sha256:" + "b" * 64
    deployment = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": fixed}]}}}}

    def pod(name: str, image: str, deleting: bool = False) -> dict[str, Any]:
        metadata = {"name": name, **({"deletionTimestamp": "2026-12-03T09:49:54Z"} if deleting else {})}
        return {"metadata": metadata, "spec": {"containers": [{"name": "web", "image": image}]}}

    crashing, starting = pod("web-broken", broken), pod("web-fixed", fixed)
    assert of_template([crashing, starting], deployment) == [starting]
    assert of_template([pod("web-fixed-old", fixed, deleting=True)], deployment) == []


def test_the_pods_of_a_workload_are_found_by_its_selector() -> None:
    assert selector({"spec": {"selector": {"matchLabels": {"b": "2", "a": "1"}}}}) == "a=1,b=2"
    assert selector({"kind": "Pod", "spec": {}}) is None


def test_the_kubernetes_table(tmp_path: Path) -> None:
    path = tmp_path / "kodev.toml"
    path.write_text('[kubernetes]\nmanifests = ["config/"]\ncontext = "dev"\nnamespace = "team"\n'
                    "rollout_timeout = 60\n")
    table = config_stage.parse(path.read_text(), path).kubernetes
    assert (table.manifests, table.context, table.namespace, table.rollout_timeout) == (("config/",), "dev", "team", 60)
    assert config_stage.parse("", path).kubernetes.manifests == ()
    for bad, key in (('manifests = "config/"', "kubernetes.manifests"), ("rollout_timeout = 0", "rollout_timeout"),
                     ("contexts = 1", "kubernetes.contexts")):
        with pytest.raises(ConfigError, match=key):
            config_stage.parse(f"[kubernetes]\n{bad}\n", path)


def test_wiring_runs_the_supervisor_in_front_of_each_kodev_container_of_the_applied_copy_only(
        read: list[objects.KubeObject]) -> None:
    from kodev.kube.swap import swappable, wire

    api = read[1]
    refs = {p: f"r/{p.rsplit('/', 1)[1]}@sha256:{'c' * 64}" for p in api.references}
    body = api.resolved(refs, "dev")
    wire(body, api.body, {"example.com/app/cmd/api": "api"}, "r/supervisor@sha256:" + "d" * 64)
    pod = body["spec"]["template"]["spec"]
    app, sidecar = pod["containers"]
    assert app["command"] == ["/kodev/.supervisor", "-bin", "/kodev/api", "-stdin", "-grace", "2s", "--",
                              "/ko-app/api"]
    assert (app["stdin"], app["stdinOnce"], app["image"]) == (True, False, refs["example.com/app/cmd/api"])
    assert app["volumeMounts"] == [{"name": "kodev-swap", "mountPath": "/kodev"}]
    assert "command" not in sidecar and "volumeMounts" not in sidecar  # not a kodev image: as written
    assert pod["volumes"] == [{"name": "kodev-swap", "emptyDir": {}}]
    init = pod["initContainers"][0]
    assert init["command"] == ["/ko-app/.supervisor", "-install", "/kodev"] and init["image"].startswith("r/supervisor")
    assert [c["name"] for c in pod["initContainers"]] == ["kodev-supervisor", "migrate"]
    assert "command" not in api.body["spec"]["template"]["spec"]["containers"][0]  # the read object: untouched

    running = {"metadata": {"uid": "u"}, "spec": pod, "status": {"containerStatuses": [
        {"name": "api", "state": {"running": {}}}, {"name": "sidecar", "state": {"running": {}}}]}}
    assert swappable(running, "api") and not swappable(running, "sidecar")
    assert not swappable({**running, "metadata": {"uid": "u", "deletionTimestamp": "now"}}, "api")


def test_a_container_with_its_own_command_keeps_it_after_the_supervisor(tmp_path: Path) -> None:
    from kodev.kube.swap import wire

    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
                                       "  - {name: a, image: ko://x.com/a, command: [/ko-app/a, serve], args: [-v]}\n")
    pod = objects.read(collect([tmp_path]))[0]
    body = pod.resolved({"x.com/a": "r/a@sha256:" + "e" * 64}, "dev")
    wire(body, pod.body, {"x.com/a": "a"}, "r/s")
    container = body["spec"]["containers"][0]
    assert container["command"][-3:] == ["--", "/ko-app/a", "serve"] and container["args"] == ["-v"]


def test_a_connection_error_is_said_in_a_few_words() -> None:
    """urllib3 wraps the socket's error in a pool's repr; the user reads the socket's words."""
    import urllib3

    from kodev.kube.connect import reason

    refused = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    wrapped = urllib3.exceptions.MaxRetryError(None, "/version/", refused)  # type: ignore[arg-type]
    assert reason(wrapped) == "Connection refused"
    tls = OSError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)")
    assert reason(tls) == "certificate verify failed: self-signed certificate"
    assert reason(ValueError("first\nlast words")) == "last words"
