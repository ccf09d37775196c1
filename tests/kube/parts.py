"""The parts of the test cluster that are built rather than installed: the control plane and the kubelet,
built from upstream's `k8s.io/kubernetes` module with the machine's Go (the module proxy serves it), and a
pause image (the sandbox every pod starts in) built locally, since no image can be pulled from outside.

Debian ships the rest (`etcd-server`, `containerd`, `runc`, `containernetworking-plugins`); env.sh installs
them. v1.34 is the last kubelet that runs on cgroup v1 without opting in (these machines mount cgroup v1), and
it speaks CRI v1, which Debian 12's containerd 1.6 serves.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

VERSION = "v1.34.4"
_STAGING_VERSION = "v0.34.4"  # k8s.io/api and its siblings are tagged v0.x for Kubernetes v1.x
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
PAUSE_IMAGE = "kodev.test/pause:1"
PACKAGES = {"etcd": "etcd-server", "containerd": "containerd", "ctr": "containerd", "runc": "runc",
            "docker-registry": "docker-registry"}
CNI_DIR = Path("/usr/lib/cni")  # containernetworking-plugins


class PartMissing(Exception):
    """A part of the cluster is not on this machine: the message says which and how to get it."""


def cache_dir() -> Path:
    """Where the built binaries live between runs (KODEV_CLUSTER_CACHE, else ~/.cache/kodev-cluster)."""
    root = os.environ.get("KODEV_CLUSTER_CACHE") or str(Path.home() / ".cache" / "kodev-cluster")
    return Path(root) / VERSION


def binaries() -> Path:
    """The directory holding every one of BINARIES, or PartMissing."""
    bin_dir = cache_dir() / "bin"
    missing = [name for name in BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise PartMissing(f"{', '.join(missing)} not built in {bin_dir}: run `scripts/cluster build` (needs Go "
                          "and the Go module proxy)")
    return bin_dir


def packaged() -> dict[str, str]:
    """The Debian-packaged programs by name -> path, or PartMissing naming the packages to install."""
    found = {name: shutil.which(name) for name in PACKAGES}
    missing = sorted({PACKAGES[name] for name, path in found.items() if path is None})
    if not (CNI_DIR / "loopback").is_file():
        missing.append("containernetworking-plugins")
    if missing:
        raise PartMissing(f"missing Debian packages: apt-get install -y {' '.join(missing)}")
    return {name: str(path) for name, path in found.items()}


def _go_mod() -> str:
    """A module that requires k8s.io/kubernetes: upstream's go.mod points its staging modules at ./staging,
    which the module zip leaves out, so each is replaced by its published twin."""
    staging = ("api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
               "cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
               "controller-manager", "cri-api", "cri-client", "csi-translation-lib", "dynamic-resource-allocation",
               "endpointslice", "externaljwt", "kms", "kube-aggregator", "kube-controller-manager", "kube-proxy",
               "kube-scheduler", "kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
               "sample-apiserver", "sample-cli-plugin", "sample-controller")
    replaces = "".join(f"\tk8s.io/{name} => k8s.io/{name} {_STAGING_VERSION}\n" for name in staging)
    return (f"module kodev.test/cluster\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes {VERSION}\n\n"
            f"replace (\n{replaces})\n")


def build(go: str = "go") -> Path:
    """Build BINARIES into the cache (once; ~10 min of CPU on 2 cores, cached by Go's build cache too)."""
    with_binaries = cache_dir() / "bin"
    try:
        return binaries()
    except PartMissing:
        pass
    source = cache_dir() / "src"
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text(_go_mod())
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    if env.get("GOPROXY") == "off":
        del env["GOPROXY"]  # the one step of the suite that downloads: upstream's modules
    partial = cache_dir() / "bin.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in BINARIES]
    version = "k8s.io/component-base/version"  # what `kubectl version` and the node report, as upstream's build sets
    ldflags = (f"-s -w -X {version}.gitVersion={VERSION} -X {version}.gitMajor=1 "
               f"-X {version}.gitMinor={VERSION.split('.')[1]} -X {version}.gitTreeState=clean")
    done = subprocess.run([go, "build", "-trimpath", f"-ldflags={ldflags}", "-o", f"{partial}/", *packages],
                          cwd=source, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise PartMissing(f"building Kubernetes {VERSION} failed:\n{done.stderr[-4000:]}")
    shutil.rmtree(with_binaries, ignore_errors=True)
    partial.rename(with_binaries)  # whole or not at all: a cut-off build is never taken for a finished one
    return binaries()


_PAUSE_GO = """package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

// The pod sandbox's process: it holds the pod's namespaces until it is told to stop.
func main() {
\tstop := make(chan os.Signal, 1)
\tsignal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
\t<-stop
}
"""


def _tar_entry(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    archive.addfile(info, io.BytesIO(data))


def _blob(archive: tarfile.TarFile, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    _tar_entry(archive, f"blobs/sha256/{digest}", data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def pause_archive(go: str, workdir: Path) -> Path:
    """An OCI image archive of PAUSE_IMAGE (one static binary at /pause), for `ctr images import`."""
    source = workdir / "pause-src"
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text("module kodev.test/pause\n\ngo 1.22\n")
    (source / "main.go").write_text(_PAUSE_GO)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "", "GOTOOLCHAIN": "local"}
    subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(source / "pause"), "."], cwd=source,
                   env=env, check=True, capture_output=True)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as files:
        _tar_entry(files, "pause", (source / "pause").read_bytes(), 0o755)
    diff = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    archive_path = workdir / "pause.tar"
    with tarfile.open(archive_path, "w") as archive:
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/pause"]},
                             "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
        config_ref = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(archive, config)}
        layer_ref = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(archive, layer.getvalue())}
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config_ref, "layers": [layer_ref]}).encode()
        manifest_ref = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(archive, manifest),
                        "annotations": {"io.containerd.image.name": PAUSE_IMAGE,
                                        "org.opencontainers.image.ref.name": PAUSE_IMAGE.rsplit(":", 1)[1]}}
        _tar_entry(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _tar_entry(archive, "index.json", json.dumps({"schemaVersion": 2, "manifests": [manifest_ref]}).encode())
    return archive_path
