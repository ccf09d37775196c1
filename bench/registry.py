"""A real registry on 127.0.0.1 holding kodev's default base, so ko and Skaffold start from kodev's bytes.

ko and Skaffold's ko builder pull their base from a registry; kodev's default base (`static`) is built
offline from Python packages. So the benchmark runs Debian's `docker-registry` (the distribution registry)
with a config of its own — 127.0.0.1 on a free port, storage in a temporary directory, no auth — and pushes
with crane exactly the layer kodev uses (`kodev.image.base.static()`, the same tar the shell loop's
`docker import` reads) with kodev's config (user 65532, PATH, SSL_CERT_FILE, workdir /). The layer's diff
ID is kodev's; only its gzip wrapper is crane's.

    with local_registry(crane) as registry:
        os.environ["KO_DEFAULTBASEIMAGE"] = registry.base
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.measure import BenchError, free_port

REGISTRY_BINARY = "docker-registry"  # Debian's package of the distribution registry (`registry serve`)
BASE_REPOSITORY = "kodev/static"


@dataclass(frozen=True)
class LocalRegistry:
    host: str  # 127.0.0.1:PORT
    base: str  # the base by digest, 127.0.0.1:PORT/kodev/static@sha256:…: no tag can move under a run
    tag: str  # the same base by tag
    diff_id: str  # kodev's static layer, as kodev computed it
    pushed_with: str  # e.g. "crane v0.22.1"


def config_text(port: int, storage: Path) -> str:
    """The registry's config: loopback only, filesystem storage, no auth, no access log (it is noise)."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def answers(host: str, timeout: float = 1.0) -> bool:
    """Whether the registry's API root answers 200 (the distribution spec's version check)."""
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def base_platform(go: str) -> str:
    """linux/<GOARCH of this machine's go>: the platform ko picks from the base."""
    done = subprocess.run([go, "env", "GOARCH"], capture_output=True, text=True, check=False, timeout=60)
    arch = done.stdout.strip()
    if done.returncode != 0 or not arch:
        raise BenchError(f"go env GOARCH failed: {done.stderr.strip()}")
    return f"linux/{arch}"


def _crane(crane: Path, *args: str) -> str:
    argv = [str(crane), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return done.stdout.strip()


def push_static_base(crane: Path, host: str, platform: str) -> tuple[str, str, str]:
    """Push kodev's static base to `host`: (by digest, by tag, the layer's diff ID)."""
    from kodev.image.base import CA_BUNDLE, DEFAULT_PATH, NONROOT_UID, static

    layer = static().layers[0]
    tag = f"{host}/{BASE_REPOSITORY}:latest"
    # --oci-empty-base: an OCI manifest on an empty config, as ko would produce; then kodev's config on top.
    _crane(crane, "append", "--oci-empty-base", "-f", str(layer.path), "-t", tag)
    _crane(crane, "mutate", tag, "--user", str(NONROOT_UID), "--workdir", "/",
           "--env", f"PATH={DEFAULT_PATH}", "--env", f"SSL_CERT_FILE=/{CA_BUNDLE}",
           "--set-platform", platform, "-t", tag)
    digest = _crane(crane, "digest", tag)
    pushed = _crane(crane, "config", tag)
    if layer.diff_id not in pushed:
        raise BenchError(f"the pushed base's config does not list kodev's layer {layer.diff_id}: {pushed[:400]}")
    return f"{host}/{BASE_REPOSITORY}@{digest}", tag, layer.diff_id


@contextlib.contextmanager
def local_registry(crane: Path, go: str, crane_version: str, work: Path | None = None,
                   timeout: float = 30) -> Iterator[LocalRegistry]:
    """Start the registry, push the base, yield it; stop the registry and delete its storage afterwards."""
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise BenchError(f"no `{REGISTRY_BINARY}` on PATH: `apt-get install -y docker-registry` (Debian)")
    root = Path(tempfile.mkdtemp(prefix="kodev-bench-registry-", dir=work))
    port = free_port()
    host = f"127.0.0.1:{port}"
    config = root / "config.yml"
    config.write_text(config_text(port, root / "storage"))
    log = (root / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=root)
    try:
        deadline = time.monotonic() + timeout
        while not answers(host):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                said = (root / "registry.log").read_text()[-800:]
                raise BenchError(f"{REGISTRY_BINARY} serve did not answer on {host} "
                                 f"(exit {process.poll()}): {said}")
            time.sleep(0.1)
        base, tag, diff_id = push_static_base(crane, host, base_platform(go))
        yield LocalRegistry(host, base, tag, diff_id, f"crane {crane_version}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
