"""Issue 23: `kodev resolve -f` on Kubernetes YAML, as `ko resolve`: every ko:// reference built, pushed to a
real registry (Debian's docker-registry on 127.0.0.1) and replaced by its digest reference; everything else
in the files comes out byte for byte. Bad YAML, an unknown import path and a library package are errors
naming the file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.integration.conftest import run_kodev
from tests.integration.process import wait_until
from tests.integration.test_registry import Registry, registry  # noqa: F401 - the module's registry fixture

MANIFESTS = """# the app: two images, built by kodev
apiVersion: apps/v1
kind: Deployment
metadata:
  name: server   # keep this comment
spec:
  template:
    spec:
      containers:
      - name: server
        image: "ko://example.com/hello/cmd/server"
        args: ["-addr", "0.0.0.0:8080"]
      - name: hello
        image: ko://example.com/hello/cmd/hello
---
# not an image: left alone
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  note: "example.com/hello/cmd/hello is mentioned, not referenced"
  # image: ko://example.com/hello/cmd/nothing (a comment)
"""


def _error(done: object) -> dict[str, object]:
    lines = getattr(done, "stdout", "").splitlines()
    return next(json.loads(line) for line in lines if '"event": "error"' in line)


def test_the_output_is_the_input_but_for_the_two_image_fields(hello: Path, registry: Registry) -> None:  # noqa: F811
    k8s = hello / "k8s"
    k8s.mkdir()
    (k8s / "app.yaml").write_text(MANIFESTS)
    done = run_kodev(["resolve", "-f", "k8s", "--push", f"{registry.host}/k8s"], hello)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    server, hello_ref = re.findall(rf"{re.escape(registry.host)}/k8s/[a-z-]+-[0-9a-f]{{32}}@sha256:[0-9a-f]{{64}}",
                                   out)
    assert "server-" in server and "hello-" in hello_ref
    expected = MANIFESTS.replace('"ko://example.com/hello/cmd/server"', f'"{server}"').replace(
        "ko://example.com/hello/cmd/hello\n", f"{hello_ref}\n")
    assert out == expected.rstrip("\n") + "\n"
    for ref in (server, hello_ref):
        name, digest = ref.split("/", 1)[1].split("@")
        assert registry.manifest(name, digest)["schemaVersion"] == 2, "each digest exists in the registry"

    again = run_kodev(["resolve", "-f", str(k8s / "app.yaml")], hello, {"KO_DOCKER_REPO": f"{registry.host}/k8s"})
    assert again.stdout == out, "KO_DOCKER_REPO names the registry too, and the same sources give the same digests"


def test_bad_yaml_is_an_error_naming_the_file_and_line(hello: Path) -> None:
    bad = hello / "bad.yaml"
    bad.write_text("kind: Pod\nspec:\n  image: [ko://example.com/hello/cmd/server\n  x: 1\n")
    done = run_kodev(["resolve", "--push", "127.0.0.1:1/x", "-f", "bad.yaml"], hello)
    assert done.returncode == 1
    assert re.search(r"^error: bad\.yaml:4: not valid YAML \(", done.stderr), done.stderr  # as the user named it


def test_an_unknown_import_path_and_a_library_package_are_named_with_their_line(hello: Path) -> None:
    for reference, line in (("ko://example.com/hello/cmd/nothing", 3), ("ko://example.com/hello/internal/greeting", 3)):
        (hello / "pod.yaml").write_text(f"kind: Pod\nspec:\n  image: {reference}\n")
        done = run_kodev(["resolve", "--push", "127.0.0.1:1/x", "-f", "pod.yaml"], hello)
        assert done.returncode == 1, done.stdout
        assert f"pod.yaml:{line}" in done.stderr and reference.removeprefix("ko://") in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_without_a_registry_resolve_says_how_to_name_one(hello: Path) -> None:
    (hello / "pod.yaml").write_text("kind: Pod\nspec:\n  image: ko://example.com/hello/cmd/hello\n")
    done = run_kodev(["resolve", "-f", "pod.yaml"], hello, {"KO_DOCKER_REPO": ""})
    assert done.returncode == 1 and "--push REPO" in done.stderr and "KO_DOCKER_REPO" in done.stderr, done.stderr


def test_watch_rewrites_only_the_manifests_of_the_images_a_save_changed(
        mod: Any, registry: Registry) -> None:  # noqa: F811
    """kodev watch -f k8s/ --push REPO --out DIR: the first round resolves every manifest into DIR; a save that
    changes only cmd/server's binary rewrites server.yaml and leaves hello.yaml as it was."""
    from tests.integration.modules import kodev_running

    k8s = mod.path / "k8s"
    (k8s / "web").mkdir(parents=True)
    (k8s / "web" / "server.yaml").write_text(f"kind: Pod\nspec:\n  image: ko://{mod.module_path}/cmd/server  # web\n")
    (k8s / "hello.yaml").write_text(f"kind: Job\nspec:\n  image: 'ko://{mod.module_path}/cmd/hello'\n")
    out = mod.path / "out"
    args = ["watch", "--json", "-f", "k8s", "--push", f"{registry.host}/w", "--out", str(out)]
    with kodev_running(mod, args) as (_proc, events):
        events.wait("watching", timeout=180)
        server, hello = (out / "web" / "server.yaml"), (out / "hello.yaml")
        first_server, first_hello = server.read_text(), hello.read_text()
        assert re.fullmatch(rf"kind: Pod\nspec:\n  image: {re.escape(registry.host)}/w/server-[0-9a-f]{{32}}"
                            r"@sha256:[0-9a-f]{64}  # web\n", first_server), first_server
        assert re.fullmatch(rf"kind: Job\nspec:\n  image: '{re.escape(registry.host)}/w/hello-[0-9a-f]{{32}}"
                            r"@sha256:[0-9a-f]{64}'\n", first_hello), first_hello
        hello_written = hello.stat().st_mtime_ns
        mark = events.mark()
        main = mod.path / "cmd" / "server" / "main.go"
        main.write_text(main.read_text().replace("func main() {", "func main() {\n\t_ = 1", 1))
        events.wait("command.result", since=mark, match=lambda e: e["command"] == "server", timeout=120)
        wait_until(lambda: server.read_text() != first_server, 30, "server.yaml was not rewritten")
        assert hello.read_text() == first_hello and hello.stat().st_mtime_ns == hello_written, "hello.yaml untouched"
        pushed = [e["command"] for e in events.all("image.published", since=mark)]
        assert pushed == ["server"], pushed


def test_kodev_toml_publish_repo_names_the_registry_after_ko_docker_repo(hello: Path, registry: Registry) -> None:  # noqa: F811
    (hello / "pod.yaml").write_text("kind: Pod\nspec:\n  image: ko://example.com/hello/cmd/hello\n")
    config = hello / "kodev.toml"
    config.write_text(config.read_text() + f'\n[publish]\nrepo = "{registry.host}/fromtoml"\n')
    done = run_kodev(["resolve", "-f", "pod.yaml"], hello, {"KO_DOCKER_REPO": ""})
    assert done.returncode == 0 and f"image: {registry.host}/fromtoml/hello-" in done.stdout, done.stderr
    done = run_kodev(["resolve", "-f", "pod.yaml"], hello, {"KO_DOCKER_REPO": f"{registry.host}/fromenv"})
    assert done.returncode == 0 and f"image: {registry.host}/fromenv/hello-" in done.stdout, done.stderr
