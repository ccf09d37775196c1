"""A real single-node Kubernetes cluster as plain processes, all on 127.0.0.1 (after upstream's
hack/local-up-cluster.sh): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and a kubelet on a
containerd of its own (own socket, root and state under the work directory), with a docker-registry its
images are pulled from. Pods run on the host network only: the CNI configuration is a loopback alone, so
nothing here adds an interface, a route or an iptables rule to the host.

`Cluster(workdir).start()` returns a ClusterInfo once the node is Ready and the default service account
exists; `stop()` ends every process (the containers and their shims too) and unmounts what the kubelet and
containerd mounted. `python -m tests.kube.cluster build|up|down` (scripts/cluster) does the same by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.integration.process import free_port
from tests.kube import parts
from tests.kube.teardown import cgroup_root, make_cgroup_root, stop_directory

CONTEXT = "kodev-test"
NODE = "kodev-node"
_SERVICE_RANGE = "10.0.0.0/24"  # a setting only: with no kube-proxy and host-network pods nothing routes there


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: Path
    context: str
    registry: str  # host:port of the registry the node pulls from (plain HTTP)
    workdir: Path
    containerd_socket: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(pki: Path) -> None:
    """A CA; the API server's serving certificate; one client certificate (system:masters) that the admin
    kubeconfig, the controllers, the kubelet and the API server (towards the kubelet) all present."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=kodev-test-ca", cwd=pki)
    signed = {"apiserver": ("/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,"
                            "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth"),
              "admin": ("/O=system:masters/CN=kodev-admin", "extendedKeyUsage=clientAuth")}
    for name, (subject, extensions) in signed.items():
        (pki / f"{name}.ext").write_text(extensions + "\n")
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "3650", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)  # service-account tokens
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _kubeconfig(path: Path, pki: Path, server: str) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "kodev-admin", "user": {"client-certificate": str(pki / "admin.crt"),
                                                   "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "kodev-admin"}}]}, indent=1))


def _containerd_config(work: Path, registry: str) -> Path:
    """containerd 1.6's CRI on sockets and directories of its own; the registry over plain HTTP."""
    hosts = work / "certs.d" / registry
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts.toml").write_text(f'server = "http://{registry}"\n\n[host."http://{registry}"]\n'
                                      '  capabilities = ["pull", "resolve"]\n')
    cni = work / "cni"
    cni.mkdir(exist_ok=True)
    (cni / "10-loopback.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "kodev-loopback", "plugins": [{"type": "loopback"}]}))
    config = work / "containerd.toml"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    config.write_text(f"""version = 2
root = "{work}/containerd/root"
state = "{work}/containerd/state"
[grpc]
  address = "{work}/containerd.sock"
[ttrpc]
  address = "{work}/containerd.ttrpc.sock"
[debug]
  address = "{work}/containerd.debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{work}/containerd/opt"
[{cri}]
  sandbox_image = "{parts.PAUSE_IMAGE}"
  enable_cdi = false
  # no lower OOM score than containerd's own: these machines refuse a negative one, and runc with them
  restrict_oom_score_adj = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.cni]
  bin_dir = "{parts.CNI_DIR}"
  conf_dir = "{cni}"
[{cri}.registry]
  config_path = "{work}/certs.d"
""")
    return config


def _kubelet_config(work: Path, pki: Path, port: int, healthz: int) -> Path:
    config = work / "kubelet.yaml"
    config.write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "127.0.0.1", "port": port, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs", "failSwapOn": False, "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{work}/containerd.sock",
        "resolvConf": "/etc/resolv.conf", "serializeImagePulls": False,
        # a shared test machine's disk is not this node's to guard: never evict a test's pod for it
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%", "imagefs.available": "0%",
                         "nodefs.inodesFree": "0%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "cgroupRoot": f"/{cgroup_root(work)}",  # its own, not /kubepods: never another kubelet's pods
        "syncFrequency": "5s", "fileCheckFrequency": "5s", "nodeStatusUpdateFrequency": "5s"}))
    return config


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - open while the process runs
        self._logs.append(log)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # a group of its own: stop() ends it whole
        self._processes.append((name, process))
        (self.workdir / "pids").write_text("".join(f"{p.pid}\n" for _, p in self._processes))

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float = 90) -> None:
        deadline, last = time.monotonic() + timeout, "not yet"
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}) while waiting for {what}:\n"
                                       f"{self.log_tail(name)}")
            try:
                if ready():
                    return
            except Exception as exc:  # not up yet: said if it never comes up
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what} ({last[:500]}); logs in {self.workdir}")

    def log_tail(self, name: str, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-size:]
        return ""

    def start(self, go: str = "go") -> ClusterInfo:
        bin_dir, programs = parts.binaries(), parts.packaged()
        work = self.workdir
        work.mkdir(parents=True, exist_ok=True)
        pki = work / "pki"
        _certificates(pki)
        ports = {name: free_port() for name in ("etcd", "peer", "apiserver", "kubelet", "healthz", "controllers",
                                                "scheduler", "registry")}
        registry = f"127.0.0.1:{ports['registry']}"
        server = f"https://127.0.0.1:{ports['apiserver']}"
        kubeconfig = work / "kubeconfig"
        _kubeconfig(kubeconfig, pki, server)

        (work / "registry.yml").write_text(
            f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {work}/registry\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: {registry}\n")
        self._start("registry", [programs["docker-registry"], "serve", str(work / "registry.yml")])
        self._start("etcd", [programs["etcd"], "--data-dir", str(work / "etcd"), "--name", "kodev-test",
                             "--listen-client-urls", f"http://127.0.0.1:{ports['etcd']}",
                             "--advertise-client-urls", f"http://127.0.0.1:{ports['etcd']}",
                             "--listen-peer-urls", f"http://127.0.0.1:{ports['peer']}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports['peer']}",
                             "--initial-cluster", f"kodev-test=http://127.0.0.1:{ports['peer']}",
                             "--log-level", "warn"])
        socket = work / "containerd.sock"
        self._start("containerd", [programs["containerd"], "--config", str(_containerd_config(work, registry))])
        self._start("kube-apiserver", [
            str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1", f"--secure-port={ports['apiserver']}", "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none", f"--cert-dir={work / 'apiserver'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={_SERVICE_RANGE}", "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'admin.crt'}", f"--kubelet-client-key={pki / 'admin.key'}",
            "--enable-priority-and-fairness=false", "--profiling=false", "--v=1"])
        self._wait("the container runtime", lambda: socket.exists())
        archive = parts.pause_archive(go, work)
        subprocess.run([programs["ctr"], "--address", str(socket), "--namespace", "k8s.io", "images", "import",
                        "--no-unpack", str(archive)], check=True, capture_output=True)
        self._wait("the API server", lambda: self._answers(kubeconfig, "/readyz"), timeout=120)
        common = [f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1",
                  "--profiling=false"]
        self._start("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), *common, f"--secure-port={ports['controllers']}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials", "--controllers=*,-nodeipam,-service-lb-controller",
            "--node-monitor-grace-period=20s"])
        self._start("kube-scheduler", [str(bin_dir / "kube-scheduler"), *common,
                                       f"--secure-port={ports['scheduler']}"])
        make_cgroup_root(work)
        self._start("kubelet", [
            str(bin_dir / "kubelet"), f"--config={_kubelet_config(work, pki, ports['kubelet'], ports['healthz'])}",
            f"--kubeconfig={kubeconfig}", f"--root-dir={work / 'kubelet'}", f"--hostname-override={NODE}",
            "--node-ip=127.0.0.1", "--v=1"])
        # The kubelet refuses a loopback node IP ("nodeIP can't be loopback address") and then leaves the node's
        # addresses alone; the API server reaches the kubelet (logs, attach) at the address the node lists, and
        # every other address here would leave 127.0.0.1: the node gets its one address from here.
        self._wait("the node to register", lambda: self._answers(kubeconfig, f"/api/v1/nodes/{NODE}"))
        self._api(kubeconfig, f"/api/v1/nodes/{NODE}/status", {"status": {"addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}]}})
        self._wait("the node to be Ready", lambda: self._node_ready(kubeconfig), timeout=120)
        self._wait("the default service account", lambda: self._answers(
            kubeconfig, "/api/v1/namespaces/default/serviceaccounts/default"))
        info = ClusterInfo(kubeconfig, CONTEXT, registry, work, socket)
        (work / "cluster.json").write_text(json.dumps({"kubeconfig": str(kubeconfig), "registry": registry}))
        return info

    def _api(self, kubeconfig: Path, path: str, merge_patch: object = None) -> Any:
        """GET `path` from the API server as the admin, or PATCH it (raises until it answers 200)."""
        config = json.loads(kubeconfig.read_text())
        user, cluster = config["users"][0]["user"], config["clusters"][0]["cluster"]
        tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
        tls.load_cert_chain(user["client-certificate"], user["client-key"])
        request = urllib.request.Request(cluster["server"] + path)
        if merge_patch is not None:
            request = urllib.request.Request(cluster["server"] + path, json.dumps(merge_patch).encode(), method="PATCH",
                                             headers={"Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(request, context=tls, timeout=5) as answer:
            body = answer.read()
        return json.loads(body) if body.startswith(b"{") else {}

    def _answers(self, kubeconfig: Path, path: str) -> bool:
        self._api(kubeconfig, path)  # raises until it answers
        return True

    def _node_ready(self, kubeconfig: Path) -> bool:
        node = self._api(kubeconfig, f"/api/v1/nodes/{NODE}")
        conditions = node.get("status", {}).get("conditions", [])
        taints = node.get("spec", {}).get("taints", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        addresses = [a["address"] for a in node.get("status", {}).get("addresses", [])]
        return ready and not taints and "127.0.0.1" in addresses

    def stop(self) -> None:
        stop_directory(self.workdir, [p.pid for _, p in self._processes])
        for _, process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for log in self._logs:
            log.close()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "build":
        print(parts.build(os.environ.get("KODEV_GO", "go")) / "kubelet")
        return 0
    if command in ("up", "down") and len(argv) == 2:
        workdir = Path(argv[1]).resolve()
        if command == "down":
            pids = [int(p) for p in (workdir / "pids").read_text().split()] if (workdir / "pids").exists() else []
            stop_directory(workdir, pids)
            return 0
        cluster = Cluster(workdir)
        try:
            info = cluster.start(os.environ.get("KODEV_GO", "go"))
        except BaseException:
            cluster.stop()
            raise
        print(f"export KUBECONFIG={info.kubeconfig}  # context {info.context}; registry {info.registry}")
        return 0
    print("usage: scripts/cluster build | up DIR | down DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
