"""What kodev may touch and what it bakes into images (issue 6, security): real Go, real dockerd.

kodev stops, removes and recreates only containers and images that carry its labels; secrets given for the
container's runtime never reach an image; archives hold sanitized relative names with fixed owners; the
static base runs as 65532. Each test has its own module path, image repository and container names
(sec-<uid>-...), all removed afterwards. What kodev did is read from its `--json` events; what a container
printed, from the stdout of a plain `kodev run`, where its output goes.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pytest

from tests.integration.conftest import run_kodev
from tests.integration.json_events import finished
from tests.integration.process import KodevProcess, fetch, free_port, sigint_not_ignored, wait_for_page

COMMAND_LABEL = "dev.kodev.command"
NONROOT = 65532

WHOAMI = """package main

import (
\t"fmt"
\t"os"
\t"strings"
\t"time"
)

// Prints who it runs as, then NAME=value for each argument; `sleep` keeps it running.
func main() {
\tif len(os.Args) > 1 && os.Args[1] == "sleep" {
\t\ttime.Sleep(time.Hour)
\t}
\tfmt.Printf("uid=%d gid=%d euid=%d\\n", os.Getuid(), os.Getgid(), os.Geteuid())
\tstatus, _ := os.ReadFile("/proc/self/status")
\tfor _, line := range strings.Split(string(status), "\\n") {
\t\tif strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") {
\t\t\tfmt.Println(strings.Join(strings.Fields(line), " "))
\t\t}
\t}
\tfor _, name := range os.Args[1:] {
\t\tfmt.Printf("%s=%s\\n", name, os.Getenv(name))
\t}
}
"""


@dataclass
class Project:
    """A module of this test's own: `module_path`, images under `repo`, containers named sec-<uid>-..."""

    path: Path
    uid: str
    client: Any
    module_path: str
    started: list[int] = field(default_factory=list)

    @property
    def repo(self) -> str:
        return f"kodev.test/s{self.uid}"

    def name(self, what: str) -> str:
        return f"sec-{self.uid}-{what}"

    def ref(self, command: str) -> str:
        return f"{self.repo}/{command}:latest"

    def container(self, name_or_id: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self.client.api.inspect_container(name_or_id))
        except docker.errors.NotFound:
            return None

    def kodev(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_kodev(args, self.path, env, timeout=120)


def _clean(project: Project) -> None:
    import docker.errors

    api = project.client.api
    found = {c["Id"] for c in api.containers(all=True, filters={"name": project.uid})}
    for pid in project.started:
        found |= {c["Id"] for c in api.containers(all=True, filters={"label": f"dev.kodev.owner.pid={pid}"})}
    for container in found:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(container, force=True)
    for image in api.images(filters={"label": COMMAND_LABEL}):
        if (image.get("Labels") or {}).get(COMMAND_LABEL, "").startswith(project.module_path + "/"):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(image["Id"], force=True)
    for image in api.images():
        for tag in image.get("RepoTags") or []:
            if tag.startswith(project.repo + "/"):
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_image(tag, force=True)


@pytest.fixture
def whoami(tmp_path: Path, go_binary: str, docker_client: Any) -> Iterator[Project]:
    """A module whose command prints its uid and environment, with a kodata tree of awkward names."""
    uid = uuid.uuid4().hex[:8]
    root = tmp_path / "whoami"
    project = Project(root, uid, docker_client, f"example.com/s{uid}")
    command = root / "cmd" / "whoami"
    kodata = command / "kodata"
    (kodata / "sub dir").mkdir(parents=True)
    (root / "go.mod").write_text(f"module {project.module_path}\n\ngo 1.22\n")
    (command / "main.go").write_text(WHOAMI)
    (kodata / "..dots.txt").write_text("two dots, not a parent\n")
    (kodata / "sub dir" / "ünï cödé.txt").write_text("unicode\n")
    (root / "shared.txt").write_text("outside kodata, inside the module\n")
    (kodata / "linked.txt").symlink_to("../../../shared.txt")
    (root / "kodev.toml").write_text(f'repo = "{project.repo}"\n')
    try:
        yield project
    finally:
        _clean(project)


@pytest.fixture
def hello_project(hello: Path, docker_client: Any) -> Iterator[Project]:
    """examples/hello, renamed to a module path of this test's own."""
    uid = uuid.uuid4().hex[:8]
    project = Project(hello, uid, docker_client, f"example.com/s{uid}")
    for path in [hello / "go.mod", *hello.rglob("*.go")]:
        path.write_text(path.read_text().replace("example.com/hello", project.module_path))
    (hello / "kodev.toml").write_text(f'repo = "{project.repo}"\n')
    try:
        yield project
    finally:
        _clean(project)


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"exit code {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


def stream_contains(chunks: Any, needles: list[bytes]) -> list[bytes]:
    """Which of `needles` occur in a stream of byte chunks (also across chunk boundaries)."""
    keep = max(len(n) for n in needles)
    tail = b""
    found: set[bytes] = set()
    for chunk in chunks:
        window = tail + chunk
        found.update(n for n in needles if n in window)
        tail = window[-keep:]
    return sorted(found)


# --- secrets ------------------------------------------------------------------------------------------------

def test_secrets_reach_the_container_runtime_env_never_the_image(whoami: Project) -> None:
    token = uuid.uuid4().hex
    flag, from_file, host = f"flag-{token}", f"file-{token}", f"host-{token}"
    (whoami.path / "app.env").write_text(f"# secrets\nSEC_FILE={from_file}\n")
    name = whoami.name("env")
    done = whoami.kodev(["run", "--no-rm", "--name", name, "-e", f"SEC_FLAG={flag}", "--env-file", "app.env",
                         "./cmd/whoami", "--", "SEC_FLAG", "SEC_FILE", "SEC_HOST"], env={"SEC_HOST": host})
    assert_ok(done)
    lines = done.stdout.splitlines()
    assert f"SEC_FLAG={flag}" in lines and f"SEC_FILE={from_file}" in lines, done.stdout
    assert "SEC_HOST=" in lines, f"a host variable nobody passed reached the container:\n{done.stdout}"

    container = whoami.container(name)
    assert container is not None
    assert f"SEC_FLAG={flag}" in container["Config"]["Env"] and f"SEC_FILE={from_file}" in container["Config"]["Env"]
    assert host not in json.dumps(container), "a host variable nobody passed is in the container's config"
    labels = json.dumps(container["Config"]["Labels"])
    assert flag not in labels and from_file not in labels, f"a secret in the container's labels: {labels}"

    api = whoami.client.api
    image = json.dumps(api.inspect_image(whoami.ref("whoami"))) + json.dumps(api.history(whoami.ref("whoami")))
    for secret in (flag, from_file, host):
        assert secret not in image, f"{secret} is in the image's config, labels or history"
    leaked = stream_contains(api.get_image(whoami.ref("whoami"), chunk_size=1 << 20),
                             [flag.encode(), from_file.encode(), host.encode()])
    assert leaked == [], f"`docker save` of the image holds {leaked}"


# --- the user -----------------------------------------------------------------------------------------------

def test_static_base_containers_run_as_65532_unless_told_otherwise(whoami: Project) -> None:
    name = whoami.name("uid")
    done = whoami.kodev(["run", "--no-rm", "--name", name, "./cmd/whoami"])
    assert_ok(done)
    lines = done.stdout.splitlines()
    assert f"uid={NONROOT} gid={NONROOT} euid={NONROOT}" in lines, done.stdout
    assert f"Uid: {NONROOT} {NONROOT} {NONROOT} {NONROOT}" in lines, done.stdout
    assert f"Gid: {NONROOT} {NONROOT} {NONROOT} {NONROOT}" in lines, done.stdout
    assert whoami.client.api.inspect_image(whoami.ref("whoami"))["Config"]["User"] == str(NONROOT)
    container = whoami.container(name)
    assert container is not None and container["Config"]["User"] == str(NONROOT), container and container["Config"]

    other = whoami.name("uid1234")
    done = whoami.kodev(["run", "--no-rm", "--name", other, "--user", "1234:2345", "./cmd/whoami"])
    assert_ok(done)
    assert "uid=1234 gid=2345 euid=1234" in done.stdout.splitlines(), done.stdout
    container = whoami.container(other)
    assert container is not None and container["Config"]["User"] == "1234:2345"


# --- archives -----------------------------------------------------------------------------------------------

def _check_members(archive: tarfile.TarFile, where: str, problems: list[str], names: list[str]) -> None:
    for member in archive:
        path = PurePosixPath(member.name)
        if member.name.startswith("/") or ".." in path.parts:
            problems.append(f"{where}: unsafe name {member.name!r}")
        if member.issym() or member.islnk():
            problems.append(f"{where}: link {member.name!r} -> {member.linkname!r}")
        if where != "docker save" and (member.uid not in (0, NONROOT) or member.gid not in (0, NONROOT)
                                       or member.uname or member.gname):
            problems.append(f"{where}: {member.name!r} owned by {member.uid}:{member.gid} "
                            f"({member.uname!r}:{member.gname!r})")
        names.append(member.name)


def test_archive_entries_are_relative_with_fixed_owners(whoami: Project, tmp_path: Path) -> None:
    assert_ok(whoami.kodev(["build", "./cmd/whoami"]))
    saved = tmp_path / "saved.tar"
    with saved.open("wb") as handle:
        for chunk in whoami.client.api.get_image(whoami.ref("whoami"), chunk_size=1 << 20):
            handle.write(chunk)
    problems: list[str] = []
    outer: list[str] = []
    inner: list[str] = []
    layers = 0
    with tarfile.open(saved) as archive:
        _check_members(archive, "docker save", problems, outer)
        for member in archive.getmembers():
            if not member.isfile() or member.name.endswith(".json") or member.name in ("repositories", "oci-layout"):
                continue
            data: IO[bytes] | None = archive.extractfile(member)
            assert data is not None
            try:
                with tarfile.open(fileobj=data, mode="r:*") as layer:
                    _check_members(layer, member.name, problems, inner)
                layers += 1
            except tarfile.ReadError:
                continue  # not a layer
    assert layers >= 3, f"expected base, kodata and binary layers in {outer}"
    assert problems == [], "\n".join(problems)
    for expected in ("var/run/ko/..dots.txt", "var/run/ko/sub dir/ünï cödé.txt", "var/run/ko/linked.txt",
                     "ko-app/whoami", "home/nonroot"):
        assert expected in inner, f"{expected!r} not in the image's layers"


# --- containers kodev did not create ---------------------------------------------------------------------------

def test_same_named_running_container_without_kodevs_labels_is_refused_and_left(whoami: Project) -> None:
    assert_ok(whoami.kodev(["build", "./cmd/whoami"]))
    name = whoami.name("taken")
    # From kodev's own image and even with one of its labels, but not created by kodev (no dev.kodev.managed).
    foreign = whoami.client.containers.run(whoami.ref("whoami"), ["sleep"], name=name, detach=True,
                                           network_mode="none", labels={"dev.kodev.service": name, "who": "user"})
    before = whoami.container(name)
    assert before is not None and before["State"]["Running"]
    for args in (["run", "--json", "--name", name, "./cmd/whoami"],
                 ["run", "--watch", "--json", "--name", name, "./cmd/whoami"]):
        done = finished(whoami.kodev(args))
        assert done.returncode == 1, f"{args}: exit code {done.returncode}\n{done.output()}"
        assert re.search(rf"{name}.*kodev did not create it", done.error()["message"]), done.output()
        assert "Traceback" not in done.stderr
        after = whoami.container(name)
        assert after is not None, f"{args} removed a container it did not create"
        assert after["Id"] == before["Id"] and after["State"]["Running"]
        assert after["State"]["StartedAt"] == before["State"]["StartedAt"], f"{args} restarted it"
        assert after["Config"]["Labels"] == before["Config"]["Labels"]
    foreign.remove(force=True)




def test_container_from_a_kodev_image_survives_watch_start_rebuilds_and_stop(hello_project: Project) -> None:
    project = hello_project
    assert_ok(project.kodev(["build", "./cmd/server"]))
    image_id = project.client.api.inspect_image(project.ref("server"))["Id"]
    sdk_port, port = free_port(), free_port()
    sdk = project.client.containers.run(image_id, ["-addr", f"127.0.0.1:{sdk_port}"], detach=True,
                                        network_mode="host", name=project.name("sdk"))
    sdk_url = f"http://127.0.0.1:{sdk_port}/"
    wait_for_page(sdk_url, "Hello, kodev!", timeout=30)
    sdk.reload()
    started_at = sdk.attrs["State"]["StartedAt"]
    service = project.name("srv")
    (project.path / "kodev.toml").write_text(f'''repo = "{project.repo}"

[services.{service}]
command = "./cmd/server"
args = ["-addr", "127.0.0.1:{port}"]
network = "host"
stop_timeout = 3

[watch]
strip = false  # link as `kodev build` did: the same sources give the same image
''')
    greeting = project.path / "internal" / "greeting" / "greeting.go"
    original = greeting.read_text()
    with sigint_not_ignored():
        proc = KodevProcess(["watch"], cwd=project.path)
    project.started.append(proc.process.pid)
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", "Hello, kodev!", timeout=120)
        # The same sources give the same image: the first rebuild replaces the very image the SDK container uses.
        assert project.client.api.inspect_image(project.ref("server"))["Id"] == image_id
        for word in ("First", "Second"):
            greeting.write_text(original.replace('"Hello, "', f'"{word}, "'))
            try:
                wait_for_page(f"http://127.0.0.1:{port}/", f"{word}, kodev!", timeout=60)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{proc.output()}") from None
        assert proc.stop(signal.SIGINT, timeout=60) == 0, proc.output()
        assert "Traceback" not in proc.output(), proc.output()
        assert not project.client.api.containers(all=True, filters={"label": f"dev.kodev.service={service}"})

        # A later kodev, which reaps containers of dead kodevs, leaves it alone too.
        assert_ok(project.kodev(["run", "--name", project.name("later"), "./cmd/hello", "--", "-exit", "0"]))
        time.sleep(0.5)
        sdk.reload()
        assert sdk.status == "running", f"the SDK container is {sdk.status}\n{proc.output()}"
        assert sdk.attrs["State"]["StartedAt"] == started_at, "the SDK container was restarted"
        assert "Hello, kodev!" in (fetch(sdk_url) or "")
        assert project.client.api.inspect_image(image_id)["Id"] == image_id, "its image was removed"
    finally:
        proc.kill()
        with contextlib.suppress(Exception):
            sdk.remove(force=True)
