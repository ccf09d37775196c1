"""Issue 23, first part: `kodev build --push` to a real registry — Debian's `docker-registry` (distribution),
started here on a 127.0.0.1 port, open and with htpasswd auth (logged in through a docker config file).

A push of a command; the daemon pulls the pushed digest and runs it; the same sources give the same digest;
a binary-only change sends only the binary layer (the byte count says so, and the registry's manifests
agree); auth refused and an unreachable registry are clear errors.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.integration.conftest import _missing, run_kodev
from tests.integration.process import free_port, wait_until

REGISTRY = "/usr/bin/docker-registry"


class Registry:
    def __init__(self, root: Path, htpasswd: Path | None = None, auth: str = "") -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth = f"auth:\n  htpasswd:\n    realm: kodev-test\n    path: {htpasswd}\n" if htpasswd else auth
        config = root / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {root}/data\nhttp:\n  addr: {self.host}\n{auth}")
        self.log = root / "registry.log"
        self.process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=open(self.log, "wb"),  # noqa: SIM115
                                        stderr=subprocess.STDOUT)
        wait_until(self._answers, 30, lambda: f"docker-registry did not start: {self.log.read_text()[-2000:]}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2).close()
            return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for credentials
        except OSError:
            return False

    def manifest(self, name: str, reference: str, auth: str = "") -> dict[str, Any]:
        request = urllib.request.Request(f"http://{self.host}/v2/{name}/manifests/{reference}", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json", **({"Authorization": auth} if auth else {})})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if shutil.which(REGISTRY) is None:
        _missing("docker-registry (Debian's package)")
    started = Registry(tmp_path_factory.mktemp("registry"))
    yield started
    started.stop()


def _push(hello: Path, repo: str, *paths: str, env: dict[str, str] | None = None
          ) -> tuple[list[str], list[dict[str, Any]]]:
    done = run_kodev(["build", "--json", "--push", repo, *paths], hello, env)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stdout + done.stderr
    return [e["ref"] for e in events if e["event"] == "image.published"], events


def _split(ref: str) -> tuple[str, str, str]:
    """HOST, NAME and DIGEST of HOST/NAME@DIGEST."""
    where, digest = ref.split("@")
    host, name = where.split("/", 1)
    return host, name, digest


def test_a_push_the_daemon_pulls_and_runs_and_the_same_sources_push_the_same_digest(
        hello: Path, registry: Registry, docker_client: Any) -> None:
    refs, events = _push(hello, f"{registry.host}/team", "./cmd/hello")
    [ref] = refs
    host, name, digest = _split(ref)
    assert host == registry.host and name.startswith("team/hello-") and digest.startswith("sha256:")
    manifest = registry.manifest(name, digest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert registry.manifest(name, "latest") == manifest
    first = next(e for e in events if e["event"] == "image.published")
    assert first["bytes_sent"] == sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]

    docker_client.api.pull(ref)
    try:
        output = docker_client.containers.run(ref, ["from-the-registry"], remove=True, network_mode="host")
        assert b"from-the-registry" in output, output
    finally:
        docker_client.api.remove_image(ref, force=True)

    again, events = _push(hello, f"{registry.host}/team", "./cmd/hello")
    assert again == refs, "the same sources give the same digest"
    assert next(e for e in events if e["event"] == "image.published")["bytes_sent"] == 0


def test_a_binary_only_change_sends_only_the_binary_layer(hello: Path, registry: Registry) -> None:
    [before], _ = _push(hello, f"{registry.host}/only", "./cmd/hello")
    greeting = hello / "internal" / "greeting" / "greeting.go"
    greeting.write_text(greeting.read_text().replace('"Hello, "', '"Howdy, "'))
    [after], events = _push(hello, f"{registry.host}/only", "./cmd/hello")
    _, name, old_digest = _split(before)
    _, same_name, new_digest = _split(after)
    assert same_name == name and new_digest != old_digest
    old, new = registry.manifest(name, old_digest), registry.manifest(name, new_digest)
    assert [layer["digest"] for layer in new["layers"][:-1]] == [layer["digest"] for layer in old["layers"][:-1]]
    assert new["layers"][-1]["digest"] != old["layers"][-1]["digest"]
    sent = next(e for e in events if e["event"] == "image.published")["bytes_sent"]
    assert sent == new["layers"][-1]["size"] + new["config"]["size"], "only the binary layer and the config went"


def test_auth_through_the_docker_config_and_a_refusal_that_says_what_to_do(
        hello: Path, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("dev:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    root = tmp_path / "auth-registry"
    root.mkdir()
    guarded = Registry(root, htpasswd)
    try:
        home = tmp_path / "docker-config"
        home.mkdir()
        refused = run_kodev(["build", "--json", "--push", f"{guarded.host}/team", "./cmd/hello"], hello,
                            {"DOCKER_CONFIG": str(home)})
        error = next(json.loads(line) for line in refused.stdout.splitlines() if '"event": "error"' in line)
        assert refused.returncode == 1 and error["kind"] == "RegistryError", refused.stdout
        assert "refused kodev's credentials" in error["message"] and f"docker login {guarded.host}" in error["message"]

        token = base64.b64encode(b"dev:s3cret").decode()
        (home / "config.json").write_text(json.dumps({"auths": {guarded.host: {"auth": token}}}))
        [ref], _ = _push(hello, f"{guarded.host}/team", "./cmd/hello", env={"DOCKER_CONFIG": str(home)})
        _, name, digest = _split(ref)
        assert guarded.manifest(name, digest, auth=f"Basic {token}")["schemaVersion"] == 2

        # A credential helper, as `docker login` with credHelpers leaves it: the helper protocol (`get`, the
        # server on stdin, JSON on stdout), spoken by a helper of this test's own.
        helpers = tmp_path / "helpers"
        helpers.mkdir()
        helper = helpers / "docker-credential-kodevtest"
        helper.write_text('#!/bin/sh\nread server\n[ "$1" = get ] || exit 1\n'
                          'printf \'{"ServerURL":"%s","Username":"dev","Secret":"s3cret"}\' "$server"\n')
        helper.chmod(0o755)
        (home / "config.json").write_text(json.dumps({"credHelpers": {guarded.host: "kodevtest"}}))
        path = f"{helpers}:{os.environ['PATH']}"
        [ref], _ = _push(hello, f"{guarded.host}/helped", "./cmd/hello", env={"DOCKER_CONFIG": str(home), "PATH": path})
        assert "/helped/hello-" in ref
    finally:
        guarded.stop()


def test_an_unreachable_registry_is_a_clear_error(hello: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    done = run_kodev(["build", "--json", "--push", f"{nobody}/team", "./cmd/hello"], hello)
    error = next(json.loads(line) for line in done.stdout.splitlines() if '"event": "error"' in line)
    assert done.returncode == 1 and error["kind"] == "RegistryError"
    assert error["message"].startswith(f"cannot reach the registry at {nobody} (") and "\n" not in error["message"]


@pytest.mark.parametrize(("flags", "says"), [
    (["--push", "team"], "not a registry repository"),
    (["--bare"], "go with --push REPO"),
    (["--push", "127.0.0.1:1/x", "--bare", "-B"], "give one of them"),
    (["--push", "127.0.0.1:1/x", "--tags", "bad tag"], "cannot be a tag"),
])
def test_bad_push_flags_are_clear_errors(hello: Path, flags: list[str], says: str) -> None:
    done = run_kodev(["build", "--json", *flags, "./cmd/hello"], hello)
    error = next(json.loads(line) for line in done.stdout.splitlines() if '"event": "error"' in line)
    assert done.returncode == 1 and error["kind"] == "ConfigError" and says in error["message"], error


def _three_commands(root: Path, repo: str) -> Path:
    """cmd/a and cmd/b import internal/shared; cmd/c does not. Image-only commands (nothing runs)."""
    module = root / "three"
    (module / "internal" / "shared").mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/three\n\ngo 1.21\n")
    (module / "internal" / "shared" / "shared.go").write_text(
        'package shared\n\nfunc Word() string { return "one" }\n')
    for name, body in (("a", 'println(shared.Word(), "a")'), ("b", 'println(shared.Word(), "b")'),
                       ("c", 'println("c")')):
        (module / "cmd" / name).mkdir(parents=True)
        imports = 'import "example.com/three/internal/shared"\n\n' if "shared" in body else ""
        (module / "cmd" / name / "main.go").write_text(f"package main\n\n{imports}func main() {{ {body} }}\n")
    (module / "kodev.toml").write_text(f'repo = "{repo}"\n\n[commands."./cmd/a"]\n[commands."./cmd/b"]\n'
                                       '[commands."./cmd/c"]\n')
    return module


def test_watch_push_pushes_only_the_images_a_shared_package_edit_affects(
        tmp_path: Path, registry: Registry, docker_client: Any) -> None:
    from tests.integration.modules import Module, kodev_running

    uid = tmp_path.name[-8:].replace("_", "x").lower()
    module = Module(_three_commands(tmp_path, f"kodev.test/{uid}"), uid, docker_client)
    with kodev_running(module, ["watch", "--json", "--push", f"{registry.host}/watch"]) as (_proc, events):
        events.wait("watching", timeout=180)
        first = {e["command"]: e["pushed"] for e in events.all("image.published")}
        assert sorted(first) == ["a", "b", "c"] and all(len(p) == 1 for p in first.values()), first
        mark = events.mark()
        shared = module.path / "internal" / "shared" / "shared.go"
        shared.write_text(shared.read_text().replace('"one"', '"two"'))
        events.wait("command.result", since=mark, count=2, timeout=120)
        pushed = {e["command"]: e["pushed"][0] for e in events.all("image.published", since=mark)}
        assert sorted(pushed) == ["a", "b"], "cmd/c does not import the package: not rebuilt, not pushed"
        for command, entry in pushed.items():
            _, name, digest = _split(entry["ref"])
            manifest = registry.manifest(name, digest)
            assert entry["ref"] != first[command][0]["ref"]
            assert entry["bytes_sent"] == manifest["layers"][-1]["size"] + manifest["config"]["size"], \
                "only the new binary layer (and the config) went"
        # The first push of b sent no base layer either: a's push had them, mounted across repositories.
        _, b_name, b_digest = _split(first["b"][0]["ref"])
        b_manifest = registry.manifest(b_name, b_digest)
        assert first["b"][0]["bytes_sent"] == b_manifest["layers"][-1]["size"] + b_manifest["config"]["size"]


def test_with_the_registry_down_a_watch_still_serves_from_the_daemon(mod: Any) -> None:
    """kodev watch --push to a registry nobody runs: each push is a clear, non-fatal error, and the service
    gets every build all the same."""
    from tests.integration.modules import kodev_running, server_service, set_greeting
    from tests.integration.process import wait_for_page

    port = free_port()
    (mod.path / "kodev.toml").write_text(f'repo = "{mod.repo}"\n' + server_service(mod.name("srv"), port))
    nobody = f"127.0.0.1:{free_port()}"
    with kodev_running(mod, ["watch", "--json", "--push", f"{nobody}/team"]) as (_proc, events):
        events.wait("watching", timeout=180)
        refused = events.errors(lambda e: e["kind"] == "RegistryError")
        assert refused and not any(e["fatal"] for e in refused), refused
        assert refused[0]["message"].startswith(f"cannot reach the registry at {nobody} (")
        wait_for_page(f"http://127.0.0.1:{port}/", "Hello", 60)
        set_greeting(mod, "Howdy")
        wait_for_page(f"http://127.0.0.1:{port}/", "Howdy", 60)


def test_an_upload_cut_midway_is_tried_again_then_a_clear_error(hello: Path, registry: Registry) -> None:
    """Through a FAKE relay that cuts blob uploads midway (tests/integration/registry_faults.py)."""
    from tests.integration.registry_faults import FaultyRelay

    once = FaultyRelay(registry.port, cut_uploads=1)
    try:
        [ref], _ = _push(hello, f"{once.host}/cut", "./cmd/hello")
        assert once.cut == 1 and "@sha256:" in ref, "one cut, tried again, pushed"
    finally:
        once.close()
    always = FaultyRelay(registry.port, cut_uploads=100)
    try:
        greeting = hello / "internal" / "greeting" / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"Hello, "', '"Cut, "'))  # a blob the registry lacks
        done = run_kodev(["build", "--json", "--push", f"{always.host}/cut", "./cmd/hello"], hello)
        error = next(json.loads(line) for line in done.stdout.splitlines() if '"event": "error"' in line)
        assert done.returncode == 1 and error["kind"] == "RegistryError" and always.cut == 3, (error, always.cut)
        assert "failed 3 times" in error["message"] and "\n" not in error["message"]
    finally:
        always.close()


def test_a_registry_that_refuses_oci_manifests_is_a_clear_error(hello: Path, registry: Registry) -> None:
    """Through a FAKE relay that answers manifest PUTs with distribution's MANIFEST_INVALID."""
    from tests.integration.registry_faults import FaultyRelay

    relay = FaultyRelay(registry.port, refuse_manifests=True)
    try:
        done = run_kodev(["build", "--json", "--push", f"{relay.host}/oci", "./cmd/hello"], hello)
        error = next(json.loads(line) for line in done.stdout.splitlines() if '"event": "error"' in line)
        assert done.returncode == 1 and error["kind"] == "RegistryError", error
        assert "rejected the image manifest" in error["message"] and "MANIFEST_INVALID" in error["message"]
    finally:
        relay.close()


def test_kodev_build_reads_ko_docker_repo_as_ko_does(hello: Path, registry: Registry) -> None:
    """KO_DOCKER_REPO names where `kodev build` pushes; `ko.local` and --local (ko's -L) mean the daemon."""
    repo = f"{registry.host}/env"
    pushed = run_kodev(["build", "./cmd/hello"], hello, {"KO_DOCKER_REPO": repo})
    assert pushed.returncode == 0 and pushed.stdout.startswith(f"{repo}/hello-") and "@sha256:" in pushed.stdout
    for env, flags in (({"KO_DOCKER_REPO": repo}, ["--local"]), ({"KO_DOCKER_REPO": "ko.local"}, [])):
        local = run_kodev(["build", *flags, "./cmd/hello"], hello, env)
        assert local.returncode == 0 and "@sha256:" not in local.stdout and local.stdout.strip().endswith(":latest")


def test_bearer_token_auth_as_hosted_registries_ask_it(hello: Path, tmp_path: Path) -> None:
    """The registry answers 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; kodev asks the realm
    for a token with the docker config's credentials and pushes with it (tests/integration/token_auth.py)."""
    from tests.integration.token_auth import TokenServer

    tokens = TokenServer(tmp_path, "dev", "s3cret")
    root = tmp_path / "token-registry"
    root.mkdir()
    guarded = Registry(root, auth=tokens.registry_auth())
    try:
        home = tmp_path / "docker-config"
        home.mkdir()
        (home / "config.json").write_text(json.dumps({"auths": {guarded.host: {
            "auth": base64.b64encode(b"dev:s3cret").decode()}}}))
        [ref], _ = _push(hello, f"{guarded.host}/tok", "./cmd/hello", env={"DOCKER_CONFIG": str(home)})
        assert "@sha256:" in ref and tokens.issued >= 1
        (home / "config.json").write_text(json.dumps({"auths": {guarded.host: {
            "auth": base64.b64encode(b"dev:wrong").decode()}}}))
        refused = run_kodev(["build", "--json", "--push", f"{guarded.host}/tok", "./cmd/hello"], hello,
                            {"DOCKER_CONFIG": str(home)})
        assert refused.returncode == 1 and "refused kodev's credentials" in refused.stdout
    finally:
        guarded.stop()
        tokens.close()
