""".ko.yaml instead of kodev.toml: what a ko user already has builds as ko would build it.

`.ko.yaml` has no repository setting, so these images are tagged kodev.local/<name> like ko's defaults.
The commands are renamed to names of this test session's own (hello<uid>, ...), so a user's own
kodev.local/hello and kodev.local/server images (from examples/hello) are never replaced nor removed; and
every image is used by the ID kodev reports for it, a tag only removed while it still points at it.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_container, run_kodev

UID = uuid.uuid4().hex[:8]
H, S, OT = f"hello{UID}", f"server{UID}", f"other{UID}"  # the commands' (and images') names
HELLO = f"example.com/hello/cmd/{H}"
SERVER = f"example.com/hello/cmd/{S}"
VERSIONED_MAIN = """// Command hello prints the shared greeting, then the version and extra set by -ldflags -X.
package main

import (
	"flag"
	"fmt"
	"os"

	"example.com/hello/internal/greeting"
)

var (
	version string
	extra   string
)

func main() {
	exitCode := flag.Int("exit", 0, "exit with this code after greeting")
	flag.Parse()
	name := "world"
	if flag.NArg() > 0 {
		name = flag.Arg(0)
	}
	fmt.Println(greeting.Message(name))
	fmt.Printf("version=%s extra=%s\\n", version, extra)
	os.Exit(*exitCode)
}
"""

KO_YAML = f"""\
defaultBaseImage: scratch
baseImageOverrides:
  {SERVER}: static
defaultPlatforms:
  - linux/arm64
defaultLdflags:
  - -X main.extra=from-defaults
builds:
  - id: hello
    main: ./cmd/{H}
    goos: linux
    ldflags:
      - -X main.version={{{{.Git.ShortCommit}}}}
"""


# --- helpers -----------------------------------------------------------------------------------------

class Built:
    """Image IDs kodev reported, by reference; tags removed at the end if they still point at them."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.made: list[tuple[str, str]] = []

    def record(self, stderr: str, refs: list[str]) -> dict[str, str]:
        found = {}
        for ref in refs:
            match = re.search(rf"{re.escape(ref)}\s+sha256:([0-9a-f]{{12}})", stderr)
            assert match, f"no image ID for {ref} in:\n{stderr}"
            found[ref] = match.group(1)
            self.made.append((ref, match.group(1)))
        return found

    def cleanup(self) -> None:
        import docker.errors

        for ref, short in self.made:
            with contextlib.suppress(docker.errors.APIError):
                if self.client.api.inspect_image(ref)["Id"].removeprefix("sha256:").startswith(short):
                    self.client.images.remove(ref)


@pytest.fixture
def built(docker_client: Any) -> Iterator[Built]:
    tracker = Built(docker_client)
    yield tracker
    tracker.cleanup()


def git(module: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=module, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def ko_module(hello: Path) -> Path:
    """The hello copy as a ko user's repository: no kodev.toml, hello printing -X variables, one commit."""
    (hello / "kodev.toml").unlink()
    (hello / "cmd" / "hello").rename(hello / "cmd" / H)
    (hello / "cmd" / "server").rename(hello / "cmd" / S)
    (hello / "cmd" / H / "main.go").write_text(VERSIONED_MAIN)
    (hello / "cmd" / OT).mkdir()
    (hello / "cmd" / OT / "main.go").write_text(VERSIONED_MAIN)  # no build entry: the defaults apply
    git(hello, "init", "-q")
    git(hello, "add", "-A")
    git(hello, "-c", "user.name=kodev tests", "-c", "user.email=tests@kodev.invalid", "commit", "-q", "-m", "init")
    return hello


def build(module: Path, built: Built, *paths: str, env: dict[str, str] | None = None
          ) -> tuple[dict[str, str], str]:
    """`kodev build PATHS` (must succeed): {reference: short image ID} and its stderr."""
    done = run_kodev(["build", *paths], module, env)
    assert done.returncode == 0, f"kodev build {paths} failed:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    refs = done.stdout.splitlines()
    return built.record(done.stderr, refs), done.stderr


def fails(module: Path, *paths: str, env: dict[str, str] | None = None) -> str:
    done = run_kodev(["build", *paths], module, env)
    assert done.returncode == 1, f"expected exit 1, got {done.returncode}:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert "error:" in done.stderr
    return done.stderr


def inspect(client: Any, image: str) -> dict[str, Any]:
    return dict(client.api.inspect_image(image))


# --- building as ko would --------------------------------------------------------------------------------

def test_ko_yaml_builds_as_ko_would(ko_module: Path, built: Built, docker_client: Any) -> None:
    (ko_module / ".ko.yaml").write_text(KO_YAML)
    git(ko_module, "add", ".ko.yaml")
    git(ko_module, "-c", "user.name=kodev tests", "-c", "user.email=tests@kodev.invalid", "commit", "-q", "-m", "ko")
    short = git(ko_module, "rev-parse", "--short", "HEAD")
    ids, stderr = build(ko_module, built, f"./cmd/{H}", f"./cmd/{S}", f"./cmd/{OT}")
    assert list(ids) == [f"kodev.local/{H}:latest", f"kodev.local/{S}:latest", f"kodev.local/{OT}:latest"]
    hello, server, other = ids.values()

    # hello: on scratch (no base layer), PATH=/ko-app, its own ldflags replacing the defaults.
    image = inspect(docker_client, hello)
    assert len(image["RootFS"]["Layers"]) == 2, "scratch base: only the kodata and binary layers"
    assert "PATH=/ko-app" in image["Config"]["Env"]
    assert not image["Config"].get("User")
    assert image["Architecture"] == inspect(docker_client, server)["Architecture"]  # defaultPlatforms ignored
    assert run_container(docker_client, hello) == (0, f"Hello, world!\nversion={short} extra=\n")

    # server: baseImageOverrides puts it on static, which runs as nonroot.
    image = inspect(docker_client, server)
    assert image["Config"]["User"] == "65532"
    assert len(image["RootFS"]["Layers"]) == 3

    # other: no build entry, so defaultLdflags apply; scratch like every command without an override.
    assert len(inspect(docker_client, other)["RootFS"]["Layers"]) == 2
    assert run_container(docker_client, other) == (0, "Hello, world!\nversion= extra=from-defaults\n")

    warnings = [line for line in stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, stderr
    assert "defaultPlatforms" in warnings[0] and "builds[0].goos" in warnings[0]
    assert ".ko.yaml" in warnings[0]


def test_ko_defaultbaseimage_overrides_the_file(ko_module: Path, built: Built, docker_client: Any) -> None:
    (ko_module / ".ko.yaml").write_text("defaultBaseImage: scratch\n")
    ids, stderr = build(ko_module, built, f"./cmd/{H}", env={"KO_DEFAULTBASEIMAGE": "static"})
    image = inspect(docker_client, ids[f"kodev.local/{H}:latest"])
    assert image["Config"]["User"] == "65532"
    assert len(image["RootFS"]["Layers"]) == 3
    assert "warning" not in stderr.lower()


def test_build_entry_and_base_override_for_the_same_command(ko_module: Path, built: Built,
                                                            docker_client: Any) -> None:
    # ko applies both: the override picks the base, the build entry the flags.
    (ko_module / ".ko.yaml").write_text(
        "defaultBaseImage: scratch\n"
        f"baseImageOverrides:\n  {HELLO}: static\n"
        f"builds:\n  - main: ./cmd/{H}\n    ldflags: ['-X main.version=from-build']\n")
    ids, _ = build(ko_module, built, f"./cmd/{H}")
    hello = ids[f"kodev.local/{H}:latest"]
    assert inspect(docker_client, hello)["Config"]["User"] == "65532", "the base override was not applied"
    assert run_container(docker_client, hello)[1].endswith("version=from-build extra=\n"), \
        "the build entry's ldflags were not applied"


@pytest.mark.parametrize("form", ["directory", "file"])
def test_ko_config_path(form: str, ko_module: Path, built: Built, docker_client: Any, tmp_path: Path) -> None:
    elsewhere = tmp_path / "ko-config"
    elsewhere.mkdir()
    config = elsewhere / (".ko.yaml" if form == "directory" else "custom-ko.yaml")
    config.write_text("defaultBaseImage: scratch\n"
                      f"builds:\n  - main: ./cmd/{H}\n    ldflags: ['-X main.version=from-ko-config-path']\n")
    target = elsewhere if form == "directory" else config
    ids, _ = build(ko_module, built, f"./cmd/{H}", env={"KO_CONFIG_PATH": str(target)})
    hello = ids[f"kodev.local/{H}:latest"]
    assert len(inspect(docker_client, hello)["RootFS"]["Layers"]) == 2, "KO_CONFIG_PATH's defaultBaseImage unused"
    # As in ko, a build's dir/main are relative to where ko runs, not to the config file's directory.
    assert run_container(docker_client, hello)[1].endswith("version=from-ko-config-path extra=\n"), \
        "the build entry of KO_CONFIG_PATH's file was not applied to the hello command"


def test_ko_config_path_that_does_not_exist(ko_module: Path, tmp_path: Path) -> None:
    stderr = fails(ko_module, f"./cmd/{H}", env={"KO_CONFIG_PATH": str(tmp_path / "nowhere")})
    assert "KO_CONFIG_PATH" in stderr


# --- bad .ko.yaml ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ("builds: 3\n", "builds"),
    ("defaultFlags: {a: b}\n", "defaultFlags"),
    ("defaultBaseImage: [scratch]\n", "defaultBaseImage"),
    (f"builds:\n  - main: ./cmd/{H}\n    ldflags: 5\n", "builds[0].ldflags"),
    ("builds:\n  - 7\n", "builds[0]"),
    ("baseImageOverrides: [static]\n", "baseImageOverrides"),
    (f"baseImageOverrides:\n  {HELLO}: 3\n", f"baseImageOverrides.{HELLO}"),
], ids=["builds-int", "defaultFlags-map", "defaultBaseImage-list", "ldflags-int", "build-int",
        "overrides-list", "override-int"])
def test_wrong_types_name_the_file_and_key(text: str, key: str, ko_module: Path) -> None:
    (ko_module / ".ko.yaml").write_text(text)
    stderr = fails(ko_module, f"./cmd/{H}")
    assert ".ko.yaml" in stderr
    assert f"'{key}'" in stderr or key in stderr, stderr


def test_invalid_yaml(ko_module: Path) -> None:
    (ko_module / ".ko.yaml").write_text(f"builds:\n  - main: ./cmd/{H}\n   ldflags: [unclosed\n")
    stderr = fails(ko_module, f"./cmd/{H}")
    assert ".ko.yaml" in stderr
    assert "YAML" in stderr
