"""`kodev build` end to end: the real `go`, the real Docker daemon, the images run and inspected.

Tests that inspect or compare tags build into a repository of their own (`kodev.test/<random>`, set in a
kodev.toml) so that concurrent test runs against the same daemon never retag each other's images.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import stat
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_container, run_kodev

HELLO_MODULE = "example.com/hello"
SERVER = f"{HELLO_MODULE}/cmd/server"
HELLO = f"{HELLO_MODULE}/cmd/hello"
KODATA_NAMES = {"ko", "ko/banner.txt", "ko/index.html", "ko/static", "ko/static/site.css"}


# --- helpers -----------------------------------------------------------------------------------------

@pytest.fixture
def repo(docker_client: Any) -> Iterator[str]:
    """A repository name no other test uses; every tag under it is removed afterwards."""
    name = f"kodev.test/{uuid.uuid4().hex[:12]}"
    yield name
    remove_repo(docker_client, name)


def remove_repo(client: Any, name: str, only: str = "") -> None:
    """Remove every tag under `name/` (`only`: just the tags of `name/only`)."""
    import docker.errors

    prefix = f"{name}/{only}:" if only else f"{name}/"
    # The low-level list: `images.list()` inspects each image and fails when another test removes one meanwhile.
    for image in client.api.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith(prefix):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(tag, force=True)


def write_config(module: Path, repo: str, extra: str = "") -> Path:
    path = module / "kodev.toml"
    path.write_text(f'repo = "{repo}"\n{extra}')
    return path


def build(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """`kodev build ARGS`, which must succeed; the references it printed on stdout."""
    done = run_kodev(["build", *args], cwd, env)
    assert done.returncode == 0, f"kodev build {args} failed:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout.splitlines()


def image_id(client: Any, ref: str) -> str:
    return str(client.api.inspect_image(ref)["Id"])


def inspect_config(client: Any, ref: str) -> dict[str, Any]:
    return dict(client.api.inspect_image(ref)["Config"])


def files_at(client: Any, image: str, path: str) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    """What a container of `image` holds at `path`, as the daemon's archive API reports it."""
    container = client.containers.create(image)
    try:
        stream, _ = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    found: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            found[member.name] = (member, handle.read() if handle else None)
    return found


def saved_layers(client: Any, ref: str, tmp_path: Path) -> list[list[tarfile.TarInfo]]:
    """The layers of `ref` as `docker save` gives them back, bottom first: each as its list of entries."""
    archive = tmp_path / f"saved-{uuid.uuid4().hex}.tar"
    with open(archive, "wb") as handle:
        for chunk in client.images.get(ref).save():
            handle.write(chunk)
    layers: list[list[tarfile.TarInfo]] = []
    with tarfile.open(archive) as outer:
        manifest_file = outer.extractfile("manifest.json")
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
        for name in manifest[0]["Layers"]:
            blob = outer.extractfile(name)
            assert blob is not None
            with tarfile.open(fileobj=io.BytesIO(blob.read()), mode="r:*") as layer:
                layers.append(layer.getmembers())
    archive.unlink()
    return layers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_when_up(container: Any, url: str, deadline_seconds: float = 30) -> str:
    """GET `url` as soon as the server in `container` answers; fail early when the container exits."""
    deadline = time.monotonic() + deadline_seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            pytest.fail(f"the server container exited:\n{container.logs().decode()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
            time.sleep(0.05)
    pytest.fail(f"{url} did not answer within {deadline_seconds}s ({last_error}); logs:\n"
                f"{container.logs().decode()}")


def mode(info: tarfile.TarInfo) -> int:
    return stat.S_IMODE(info.mode)


# --- building and running ----------------------------------------------------------------------------

def test_build_two_commands_prints_one_reference_per_line(hello: Path, repo: str) -> None:
    write_config(hello, repo)
    done = run_kodev(["build", "./cmd/server", "./cmd/hello"], hello)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{repo}/server:latest\n{repo}/hello:latest\n"
    # Progress and timings are on stderr, and mention both commands.
    assert "server" in done.stderr and "hello" in done.stderr
    assert re.search(r"\d+\.\d\ds", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_config_images_are_kodev_local_last_element(hello: Path, docker_client: Any) -> None:
    # A command of its own, so that the default tag kodev.local/<name> is one no other test run uses.
    name = f"kt{uuid.uuid4().hex[:10]}"
    command = hello / "tools" / name
    command.mkdir(parents=True)
    (command / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("tool") }\n')
    (hello / "kodev.toml").unlink()  # the example's own config; this test is about running without one
    try:
        done = run_kodev(["build", f"./tools/{name}"], hello)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"kodev.local/{name}:latest\n"
        labels = inspect_config(docker_client, f"kodev.local/{name}:latest")["Labels"]
        assert labels["dev.kodev.command"] == f"{HELLO_MODULE}/tools/{name}"
        assert run_container(docker_client, f"kodev.local/{name}:latest") == (0, "tool\n")
    finally:
        remove_repo(docker_client, "kodev.local", only=name)


def test_one_go_build_for_several_commands(hello: Path, repo: str, go_binary: str, docker_client: Any,
                                           tmp_path: Path) -> None:
    log = tmp_path / "go-calls.log"
    wrapper = tmp_path / "go-wrapper"
    wrapper.write_text("#!/bin/sh\n"
                       f"printf '%s|%s|%s|%s\\n' \"$CGO_ENABLED\" \"$GOOS\" \"$GOARCH\" \"$*\" >> '{log}'\n"
                       f"exec '{go_binary}' \"$@\"\n")
    wrapper.chmod(0o755)
    write_config(hello, repo)
    refs = build(["--go", str(wrapper), "./cmd/server", "./cmd/hello"], hello)
    assert refs == [f"{repo}/server:latest", f"{repo}/hello:latest"]
    builds = [line.split("|") for line in log.read_text().splitlines() if line.split("|")[3].startswith("build ")]
    assert len(builds) == 1, builds
    cgo, goos, goarch, args = builds[0]
    assert (cgo, goos) == ("0", "linux")
    assert goarch == docker_client.version()["Arch"]
    words = args.split()
    assert "-trimpath" in words and "-o" in words
    assert SERVER in words and HELLO in words


def test_hello_image_greets_and_exits_with_the_code_it_is_given(hello: Path, repo: str,
                                                                 docker_client: Any) -> None:
    write_config(hello, repo)
    build(["./cmd/server", "./cmd/hello"], hello)
    ref = f"{repo}/hello:latest"
    assert run_container(docker_client, ref) == (0, "Hello, world!\n")
    assert run_container(docker_client, ref, "kodev") == (0, "Hello, kodev!\n")
    assert run_container(docker_client, ref, "-exit", "3", "you") == (3, "Hello, you!\n")


def test_server_image_serves_its_page_from_kodata(hello: Path, repo: str, docker_client: Any) -> None:
    write_config(hello, repo)
    build(["./cmd/server", "./cmd/hello"], hello)
    port = free_port()
    container = docker_client.containers.run(f"{repo}/server:latest", ["-addr", f"127.0.0.1:{port}"],
                                             detach=True, network_mode="host")
    try:
        page = fetch_when_up(container, f"http://127.0.0.1:{port}/")
    finally:
        container.remove(force=True)
    assert "Hello, kodev!" in page
    banner = (hello / "assets" / "banner.txt").read_text().strip()
    assert banner in page  # reached kodata through the symlink kodata/banner.txt -> assets/banner.txt
    assert "{{" not in page


def test_kodata_lands_at_var_run_ko_read_only_root_owned_and_dereferenced(hello: Path, repo: str,
                                                                          docker_client: Any) -> None:
    write_config(hello, repo)
    build(["./cmd/server"], hello)
    found = files_at(docker_client, f"{repo}/server:latest", "/var/run/ko")
    assert set(found) == KODATA_NAMES
    for name, (info, _) in found.items():
        assert mode(info) == 0o555, f"{name}: {oct(mode(info))}"
        assert (info.uid, info.gid) == (0, 0), name
    banner, content = found["ko/banner.txt"]
    assert banner.isfile(), "kodata/banner.txt is a symlink in the source and must arrive as a regular file"
    assert content == (hello / "assets" / "banner.txt").read_bytes()
    assert found["ko/static"][0].isdir()
    assert found["ko/static/site.css"][1] == (hello / "cmd/server/kodata/static/site.css").read_bytes()
    assert found["ko/index.html"][1] == (hello / "cmd/server/kodata/index.html").read_bytes()


def test_layers_are_base_kodata_binary_with_sorted_entries_and_zero_mtimes(hello: Path, repo: str,
                                                                           docker_client: Any,
                                                                           tmp_path: Path) -> None:
    write_config(hello, repo)
    build(["./cmd/server"], hello)
    layers = saved_layers(docker_client, f"{repo}/server:latest", tmp_path)
    assert len(layers) == 3  # static base, kodata, binary
    base, kodata, binary = layers
    assert any(m.name == "etc/passwd" for m in base)
    names = [m.name.rstrip("/") for m in kodata]
    assert names == ["var/run/ko", "var/run/ko/banner.txt", "var/run/ko/index.html", "var/run/ko/static",
                     "var/run/ko/static/site.css"]
    assert [m.name.rstrip("/") for m in binary] == ["ko-app", "ko-app/server"]
    for member in (*kodata, *binary):
        assert member.mtime == 0, member.name
        assert (member.uid, member.gid) == (0, 0), member.name
        assert mode(member) == 0o555, member.name
        assert not member.issym(), member.name


def test_image_config_is_ko_style(hello: Path, repo: str, docker_client: Any) -> None:
    write_config(hello, repo)
    build(["./cmd/server"], hello)
    inspected = docker_client.api.inspect_image(f"{repo}/server:latest")
    config = inspected["Config"]
    assert config["Entrypoint"] == ["/ko-app/server"]
    assert not config.get("Cmd")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].endswith(":/ko-app")
    assert env["KO_DATA_PATH"] == "/var/run/ko"
    assert config["User"] == "65532"
    assert config["Labels"]["dev.kodev.command"] == SERVER
    assert "org.opencontainers.image.revision" not in config["Labels"]  # not a git checkout
    assert inspected["Os"] == "linux"
    assert inspected["Architecture"] == docker_client.version()["Arch"]
    assert inspected["Created"].startswith("1970-01-01T00:00:00")


def test_binary_is_at_ko_app_with_mode_0555(hello: Path, repo: str, docker_client: Any) -> None:
    write_config(hello, repo)
    build(["./cmd/server"], hello)
    found = files_at(docker_client, f"{repo}/server:latest", "/ko-app")
    assert set(found) == {"ko-app", "ko-app/server"}
    directory, _ = found["ko-app"]
    binary, content = found["ko-app/server"]
    assert directory.isdir() and mode(directory) == 0o555
    assert binary.isfile() and mode(binary) == 0o555
    assert (binary.uid, binary.gid) == (0, 0)
    assert content is not None and content[:4] == b"\x7fELF"


def test_static_base_has_certificates_zoneinfo_users_and_tmp(hello: Path, repo: str,
                                                              docker_client: Any) -> None:
    write_config(hello, repo)
    build(["./cmd/hello"], hello)
    ref = f"{repo}/hello:latest"
    certs = files_at(docker_client, ref, "/etc/ssl/certs/ca-certificates.crt")["ca-certificates.crt"]
    assert certs[0].isfile() and b"-----BEGIN CERTIFICATE-----" in (certs[1] or b"")
    utc = files_at(docker_client, ref, "/usr/share/zoneinfo/UTC")["UTC"]
    assert (utc[1] or b"").startswith(b"TZif")
    passwd = (files_at(docker_client, ref, "/etc/passwd")["passwd"][1] or b"").decode()
    assert re.search(r"^root:x:0:0:", passwd, re.M)
    assert re.search(r"^nonroot:x:65532:65532:", passwd, re.M)
    group = (files_at(docker_client, ref, "/etc/group")["group"][1] or b"").decode()
    assert re.search(r"^nonroot:x:65532:", group, re.M)
    tmp = files_at(docker_client, ref, "/tmp")["tmp"][0]
    assert tmp.isdir() and mode(tmp) == 0o1777


# --- reproducibility -----------------------------------------------------------------------------------

def test_same_sources_same_image_id_even_with_an_empty_cache(hello: Path, repo: str, docker_client: Any,
                                                             tmp_path: Path) -> None:
    write_config(hello, repo)
    refs = [f"{repo}/server:latest", f"{repo}/hello:latest"]
    assert build(["./cmd/server", "./cmd/hello"], hello) == refs
    first = [image_id(docker_client, ref) for ref in refs]
    assert build(["./cmd/server", "./cmd/hello"], hello) == refs
    assert [image_id(docker_client, ref) for ref in refs] == first
    fresh_cache = tmp_path / "empty-cache"
    fresh_cache.mkdir()
    assert build(["./cmd/server", "./cmd/hello"], hello, {"KODEV_CACHE_DIR": str(fresh_cache)}) == refs
    assert [image_id(docker_client, ref) for ref in refs] == first
    assert any(fresh_cache.rglob("*.tar")), "the build did not use the KODEV_CACHE_DIR it was given"


def test_a_source_change_gives_a_new_image_id(hello: Path, repo: str, docker_client: Any) -> None:
    write_config(hello, repo)
    refs = [f"{repo}/server:latest", f"{repo}/hello:latest"]
    build(["./cmd/server", "./cmd/hello"], hello)
    before = [image_id(docker_client, ref) for ref in refs]
    greeting = hello / "internal" / "greeting" / "greeting.go"
    greeting.write_text(greeting.read_text().replace('"Hello, "', '"Howdy, "'))
    build(["./cmd/server", "./cmd/hello"], hello)
    after = [image_id(docker_client, ref) for ref in refs]
    assert after[0] != before[0] and after[1] != before[1]
    assert run_container(docker_client, refs[1]) == (0, "Howdy, world!\n")


def test_a_kodata_change_changes_only_the_image_that_has_it(hello: Path, repo: str,
                                                            docker_client: Any) -> None:
    write_config(hello, repo)
    refs = [f"{repo}/server:latest", f"{repo}/hello:latest"]
    build(["./cmd/server", "./cmd/hello"], hello)
    before = [image_id(docker_client, ref) for ref in refs]
    (hello / "assets" / "banner.txt").write_text("A different banner.\n")  # behind the kodata symlink
    build(["./cmd/server", "./cmd/hello"], hello)
    after = [image_id(docker_client, ref) for ref in refs]
    assert after[0] != before[0]
    assert after[1] == before[1]


def test_source_date_epoch_sets_created_and_kodata_mtimes(hello: Path, repo: str, docker_client: Any,
                                                          tmp_path: Path) -> None:
    write_config(hello, repo)
    ref = f"{repo}/server:latest"
    build(["./cmd/server"], hello)
    unset = image_id(docker_client, ref)
    build(["./cmd/server"], hello, {"SOURCE_DATE_EPOCH": "1700000000"})
    inspected = docker_client.api.inspect_image(ref)
    assert inspected["Created"] == "2023-11-14T22:13:20Z"
    assert inspected["Id"] != unset
    kodata = saved_layers(docker_client, ref, tmp_path)[-2]
    assert {m.mtime for m in kodata} == {1700000000}
    build(["./cmd/server"], hello, {"SOURCE_DATE_EPOCH": "1700000000"})
    assert image_id(docker_client, ref) == inspected["Id"]


# --- naming the commands and configuring them ----------------------------------------------------------

@pytest.mark.parametrize("form", ["./cmd/hello", HELLO, f"ko://{HELLO}"])
def test_a_command_can_be_named_by_directory_import_path_or_ko_url(hello: Path, repo: str, form: str,
                                                                   docker_client: Any) -> None:
    write_config(hello, repo)
    assert build([form], hello) == [f"{repo}/hello:latest"]
    assert inspect_config(docker_client, f"{repo}/hello:latest")["Labels"]["dev.kodev.command"] == HELLO
    assert run_container(docker_client, f"{repo}/hello:latest") == (0, "Hello, world!\n")


def test_ko_url_and_directory_give_the_same_image(hello: Path, repo: str, docker_client: Any) -> None:
    write_config(hello, repo)
    ref = f"{repo}/hello:latest"
    build(["./cmd/hello"], hello)
    by_dir = image_id(docker_client, ref)
    build([f"ko://{HELLO}"], hello)
    assert image_id(docker_client, ref) == by_dir


def test_config_scratch_base_and_image_name(hello: Path, repo: str, docker_client: Any,
                                           tmp_path: Path) -> None:
    write_config(hello, repo, 'base = "scratch"\n[commands."./cmd/hello"]\nimage = "greeter"\n')
    assert build(["./cmd/hello", "./cmd/server"], hello) == [f"{repo}/greeter:latest", f"{repo}/server:latest"]
    ref = f"{repo}/greeter:latest"
    assert run_container(docker_client, ref, "scratch") == (0, "Hello, scratch!\n")
    layers = saved_layers(docker_client, ref, tmp_path)
    assert len(layers) == 2  # kodata, binary: nothing from a base
    assert not any(m.name.startswith("etc") for layer in layers for m in layer)
    config = inspect_config(docker_client, ref)
    assert config["Entrypoint"] == ["/ko-app/hello"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"] == "/ko-app"
    assert config["Labels"]["dev.kodev.command"] == HELLO


def test_the_default_image_name_is_kodev_local_greeter(hello: Path, docker_client: Any) -> None:
    # A name of this test's own under kodev.local, removed afterwards: never one a user may have.
    name = f"greeter-{uuid.uuid4().hex[:10]}"
    (hello / "kodev.toml").write_text(f'base = "scratch"\n[commands."./cmd/hello"]\nimage = "{name}"\n')
    try:
        assert build(["./cmd/hello"], hello) == [f"kodev.local/{name}:latest"]
        assert inspect_config(docker_client, f"kodev.local/{name}:latest")["Labels"]["dev.kodev.command"] == HELLO
    finally:
        remove_repo(docker_client, "kodev.local", only=name)


def test_config_is_found_in_a_parent_directory(hello: Path, repo: str, docker_client: Any) -> None:
    write_config(hello, repo, '[commands."./cmd/hello"]\nimage = "from-parent"\n')
    assert build(["."], hello / "cmd" / "hello") == [f"{repo}/from-parent:latest"]
    assert run_container(docker_client, f"{repo}/from-parent:latest") == (0, "Hello, world!\n")


def test_config_given_with_the_config_flag(hello: Path, repo: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "configs" / "mine.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(f'repo = "{repo}"\n[commands."{HELLO}"]\nimage = "flagged"\n')
    assert build(["--config", str(elsewhere), "./cmd/hello"], hello) == [f"{repo}/flagged:latest"]


# --- ldflags templates ---------------------------------------------------------------------------------

def make_tpl_module(root: Path, ldflags: str, repo: str) -> Path:
    """A small git-checked-in module whose main prints `var version`."""
    module = root / "tpl"
    module.mkdir()
    (module / "go.mod").write_text("module example.com/tpl\n\ngo 1.22\n")
    (module / "main.go").write_text('package main\n\nimport "fmt"\n\nvar version string\n\n'
                                    'func main() { fmt.Println("version=" + version) }\n')
    (module / "kodev.toml").write_text(f'repo = "{repo}"\n[build]\nldflags = [{json.dumps(ldflags)}]\n')
    return module


def git(module: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=module,
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(module.parent)})
    return done.stdout.strip()


def test_ldflags_templates_expand_git_and_env(tmp_path: Path, repo: str, docker_client: Any,
                                              go_binary: str) -> None:
    module = make_tpl_module(tmp_path, "-X main.version={{.Git.ShortCommit}}-{{.Env.TPL_SUFFIX}}", repo)
    git(module, "init", "-q")
    git(module, "add", "-A")
    git(module, "commit", "-q", "-m", "init")
    full = git(module, "rev-parse", "HEAD")
    ref = f"{repo}/tpl:latest"
    assert build(["."], module, {"TPL_SUFFIX": "sfx"}) == [ref]
    assert run_container(docker_client, ref) == (0, f"version={full[:7]}-sfx\n")
    labels = inspect_config(docker_client, ref)["Labels"]
    assert labels["org.opencontainers.image.revision"] == full
    assert labels["dev.kodev.command"] == "example.com/tpl"


def test_unknown_template_key_is_an_error(tmp_path: Path, repo: str, go_binary: str,
                                          docker_client: Any) -> None:
    module = make_tpl_module(tmp_path, "-X main.version={{.Nope}}", repo)
    done = run_kodev(["build", "."], module)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr
    assert "{{.Nope}}" in done.stderr
    assert str(module / "kodev.toml") in done.stderr
    # The culprit is the key `build.ldflags` in that file.
    assert "build.ldflags" in done.stderr, done.stderr
