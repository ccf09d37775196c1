"""The benchmark's rival tools without the network: pins, install commands, the installer's outcomes (with a
fake `go`), version strings, and the rivals' output parsers on lines the real tools printed here."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from bench import tools
from bench.measure import BenchError, Line
from bench.registry import config_text
from bench.rivalmarks import AIR_MARKS, KO_MARKS, SKAFFOLD_MARKS, ko_reference, stages, strip_ansi
from bench.rivals import air_toml, inline_kodata_symlinks, ko_yaml, skaffold_yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# --- pins and commands ------------------------------------------------------------------------------------

def test_every_tool_is_pinned_once_with_a_full_version() -> None:
    names = [tool.name for tool in tools.ALL]
    assert len(names) == len(set(names)) == 4
    for tool in tools.ALL:
        assert tools.parse_version(tool.version) == tool.version, tool
        assert tool.package.startswith(tool.module)
        assert "@" not in tool.package
    assert tools.RIVALS == (tools.KO, tools.AIR, tools.SKAFFOLD)


def test_the_install_command_is_go_install_at_the_pinned_version(tmp_path: Path) -> None:
    argv, env = tools.install_command(tools.KO, "/usr/bin/go", tmp_path / "bin")
    assert argv == ["/usr/bin/go", "install", "github.com/google/ko@v0.19.1"]
    assert env == {"GOBIN": str(tmp_path / "bin"), "GOTOOLCHAIN": "local"}
    argv, _ = tools.install_command(tools.SKAFFOLD, "go", tmp_path)
    assert argv[-1] == "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold@v2.16.1"
    assert argv[2] == "-ldflags=-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=v2.16.1"


def test_the_source_build_runs_in_the_module_on_its_command(tmp_path: Path) -> None:
    assert tools.SKAFFOLD.subpackage == "./cmd/skaffold"
    assert tools.AIR.subpackage == "."
    assert tools.download_command(tools.SKAFFOLD, "go") == [
        "go", "mod", "download", "-json", "github.com/GoogleContainerTools/skaffold/v2@v2.16.1"]
    argv = tools.source_build_command(tools.SKAFFOLD, "go", tmp_path)
    assert argv[:3] == ["go", "build", "-trimpath"]
    assert argv[-3:] == ["-o", str(tmp_path / "skaffold"), "./cmd/skaffold"]


def test_the_cache_has_a_directory_per_tool_and_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tools.tool_dir(tools.AIR) == tmp_path / "kodev-bench" / "tools" / "air-v1.67.4"


def test_parse_download_reads_the_dir_or_the_error() -> None:
    # `go mod download -json` as it printed here for a served version, and for v2.19.0 (checksum database 404).
    served = json.dumps({"Path": "github.com/GoogleContainerTools/skaffold/v2", "Version": "v2.16.1",
                         "Dir": "/root/go/pkg/mod/github.com/!google!container!tools/skaffold/v2@v2.16.1"})
    assert tools.parse_download(served) == (
        "/root/go/pkg/mod/github.com/!google!container!tools/skaffold/v2@v2.16.1", "")
    refused = json.dumps({"Path": "github.com/GoogleContainerTools/skaffold/v2", "Version": "v2.19.0",
                          "Error": "github.com/GoogleContainerTools/skaffold/v2@v2.19.0: verifying module: "
                                   "404 Not Found"})
    assert tools.parse_download(refused)[1].endswith("404 Not Found")
    assert tools.parse_download("go: not json") == ("", "go: not json")


# --- version strings, as the tools printed them ---------------------------------------------------------

AIR_BANNER = "\n  __    _   ___  \n / /\\  | | | |_) \n/_/--\\ |_| |_| \\_ \nv1.67.4, built with Go go1.27.3\n\n"


@pytest.mark.parametrize(("output", "version"), [
    ("v0.19.1\n", "v0.19.1"),  # ko version
    ("0.19.1\n", "v0.19.1"),
    (AIR_BANNER, "v1.67.4"),  # air -v: the tool's version comes before Go's
    ("v2.16.1\n", "v2.16.1"),  # skaffold version
    ("v2.16.1-12-gabcdef\n", "v2.16.1-12-gabcdef"),
    ("\n", None),  # skaffold version without its -X: an empty line
    ("built with Go go1.27.3", None),  # Go's own version is never taken for the tool's
])
def test_parse_version(output: str, version: str | None) -> None:
    assert tools.parse_version(output) == version


# --- the installer, with a fake go ----------------------------------------------------------------------

def fake_go(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-go"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# Writes a `tool` to $GOBIN that prints the version the package was asked at (the last argument's @…).
BUILDS = ('for last; do :; done\nmkdir -p "$GOBIN"\n'
          'printf \'#!/bin/sh\\necho %s\\n\' "${last##*@}" > "$GOBIN/$TOOL"\nchmod +x "$GOBIN/$TOOL"\n')


def test_install_then_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL", "air")
    go = fake_go(tmp_path, BUILDS)
    first = tools.install(tools.AIR, go=go, root=tmp_path / "cache", log=False)
    assert first.ok and not first.reused and first.version == "v1.67.4", first.error
    assert first.path == tmp_path / "cache" / "air-v1.67.4" / "bin" / "air"
    again = tools.install(tools.AIR, go=fake_go(tmp_path, "exit 99\n"), root=tmp_path / "cache", log=False)
    assert again.ok and again.reused and again.seconds == 0.0 and again.version == "v1.67.4"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["air-v1.67.4"]  # no scratch left behind


def test_a_failed_install_keeps_go_s_own_words(tmp_path: Path) -> None:
    go = fake_go(tmp_path, 'echo "go: downloading github.com/google/ko v0.19.1" >&2\n'
                           'echo "go: github.com/google/ko@v0.19.1: 403 Forbidden" >&2\nexit 1\n')
    result = tools.install(tools.KO, go=go, root=tmp_path / "cache", log=False)
    assert not result.ok and result.path is None
    assert result.error.endswith("exited 1: go: downloading github.com/google/ko v0.19.1\n"
                                 "go: github.com/google/ko@v0.19.1: 403 Forbidden")
    assert "failed" in result.describe().lower() and "403 Forbidden" in result.describe()
    assert list((tmp_path / "cache").iterdir()) == []


def test_skaffold_falls_back_to_its_source_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "module"
    source.mkdir()
    monkeypatch.setenv("TOOL", "skaffold")
    # install: the deprecation check's 403; mod download: the Dir; build: a binary at -o.
    go = fake_go(tmp_path, (
        'case "$1" in\n'
        '  install) echo "go: loading deprecation for github.com/GoogleContainerTools/skaffold/v2: 403 Forbidden"'
        ' >&2; exit 1;;\n'
        f'  mod) echo \'{{"Dir": "{source}"}}\';;\n'
        '  build) while [ "$1" != "-o" ]; do shift; done; mkdir -p "$(dirname "$2")"\n'
        '         printf \'#!/bin/sh\\necho v2.16.1\\n\' > "$2"; chmod +x "$2";;\n'
        'esac\n'))
    result = tools.install(tools.SKAFFOLD, go=go, root=tmp_path / "cache", log=False)
    assert result.ok, result.error
    assert "403 Forbidden" in result.note and "source" in result.note
    reused = tools.install(tools.SKAFFOLD, go=go, root=tmp_path / "cache", log=False)
    assert reused.reused and reused.note == result.note


def test_a_binary_that_reports_another_version_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL", "ko")
    go = fake_go(tmp_path, 'mkdir -p "$GOBIN"; printf \'#!/bin/sh\\necho v0.15.0\\n\' > "$GOBIN/ko"; '
                           'chmod +x "$GOBIN/ko"\n')
    result = tools.install(tools.KO, go=go, root=tmp_path / "cache", log=False)
    assert not result.ok and result.error == "ko reports v0.15.0, v0.19.1 was installed"


def test_no_go_is_reported(tmp_path: Path) -> None:
    result = tools.install(tools.AIR, go=str(tmp_path / "missing-go"), root=tmp_path / "cache", log=False)
    assert not result.ok and "missing-go" in result.error


# --- the rivals' output, as printed here ----------------------------------------------------------------

def lines(stream: str, *texts: tuple[float, str]) -> list[Line]:
    return [Line(at, stream, text) for at, text in texts]


KO_STDERR = lines(
    "stderr",
    (10.30, "2026/12/01 20:09:09 Using base 127.0.0.1:39325/kodev/static@sha256:7e69ec422be412d9fa452c38ad185eb0"
            "19bb687d1db695050a5469bd7561df15 for example.com/hello/cmd/server"),
    (10.32, "2026/12/01 20:09:09 Using build config server for example.com/hello/cmd/server"),
    (10.33, "2026/12/01 20:09:09 current folder is not a git repository. Git info will not be available"),
    (10.35, "2026/12/01 20:09:09 Building example.com/hello/cmd/server for linux/amd64"),
    (11.30, "2026/12/01 20:09:17 Loading ko.local/kodev.bench/test:f97dff7b4f2948638098718972f5fcda79b4f47c0fe7"
            "d720394a265d7695033b"),
    (11.45, "2026/12/01 20:09:18 Loaded ko.local/kodev.bench/test:f97dff7b4f2948638098718972f5fcda79b4f47c0fe7d"
            "720394a265d7695033b"),
    (11.46, "2026/12/01 20:09:18 Adding tag kbtest"),
    (11.48, "2026/12/01 20:09:18 Added tag kbtest"),
)


def test_ko_stages_from_its_log() -> None:
    found = stages(KO_STDERR, KO_MARKS, started=10.0, ended=11.5)
    assert found == pytest.approx({"start + base": 0.30, "config": 0.05, "go build + layers": 0.95,
                                   "load": 0.15, "tag": 0.05})
    assert sum(found.values()) == pytest.approx(1.5)


def test_ko_reference_is_its_last_stdout_line() -> None:
    ref = "ko.local/kodev.bench/test:f97dff7b4f2948638098718972f5fcda79b4f47c0fe7d720394a265d7695033b"
    assert ko_reference(f"{ref}\n") == ref
    with pytest.raises(BenchError, match=r"no ko\.local image reference"):
        ko_reference("")
    with pytest.raises(BenchError):
        ko_reference("Error: failed to publish images\n")


AIR_OUTPUT = lines(
    "stdout",
    (5.00, "2026/12/01 20:16:14 server listening on http://127.0.0.1:18555"),
    (5.03, "cmd/server/main.go has changed"),
    (5.06, "building..."),
    (5.80, "running..."),
    (5.81, "2026/12/01 20:16:20 server listening on http://127.0.0.1:18555"),
)


def test_air_stages_from_its_output() -> None:
    found = stages(AIR_OUTPUT, AIR_MARKS, started=5.0, ended=5.83)
    assert found == pytest.approx({"watcher": 0.03, "delay": 0.03, "go build": 0.74, "restart -> serving": 0.03})


def test_a_missing_point_leaves_its_time_to_the_next() -> None:
    found = stages([line for line in AIR_OUTPUT if line.text != "building..."], AIR_MARKS, 5.0, 5.83)
    assert found == pytest.approx({"watcher": 0.03, "go build": 0.77, "restart -> serving": 0.03})
    assert stages([], AIR_MARKS, 5.0, 5.5) == pytest.approx({"restart -> serving": 0.5})


# One `skaffold dev` rebuild as read here (seconds since the write); ko's "Loading"/"Loaded" lines name the
# image with the default registry's host, cut out here.
SKAFFOLD_OUTPUT = [Line(at, stream, text) for at, stream, text in (
    (0.025, "stdout", "Generating tags..."),
    (0.026, "stdout", " - kb-89cbc325-cap-skaffold -> kb-89cbc325-cap-skaffold:latest"),
    (0.026, "stdout", "Checking cache..."),
    (0.027, "stdout", " - kb-89cbc325-cap-skaffold: Not found. Building"),
    (0.027, "stdout", "Starting build..."),
    (0.027, "stdout", "Found [] context, using local docker daemon."),
    (0.028, "stdout", "Building [kb-89cbc325-cap-skaffold]..."),
    (0.341, "stderr", "Using base 127.0.0.1:50557/kodev/static@sha256:7e69ec422be412d9fa452c38ad185eb019bb687d1db6"
                      "95050a5469bd7561df15 for example.com/hello/cmd/server"),
    (0.345, "stderr", "Using build config kb-89cbc325-cap-skaffold for example.com/hello/cmd/server"),
    (0.356, "stderr", "current folder is not a git repository. Git info will not be available"),
    (0.357, "stderr", "Building example.com/hello/cmd/server for linux/amd64"),
    (1.397, "stderr", "Loading library/kb-89cbc325-cap-skaffold:e2e7bea17e7e9f94a84a524479bb4747ce07f04cd394f13802"
                      "34480e75d2ee02"),
    (1.739, "stderr", "Loaded library/kb-89cbc325-cap-skaffold:e2e7bea17e7e9f94a84a524479bb4747ce07f04cd394f138023"
                      "4480e75d2ee02"),
    (1.739, "stderr", "Adding tag latest"),
    (1.752, "stderr", "Added tag latest"),
    (1.770, "stdout", "Build [kb-89cbc325-cap-skaffold] succeeded"),
    (1.771, "stdout", "Tags used in deployment:"),
    (1.771, "stdout", " - kb-89cbc325-cap-skaffold -> kb-89cbc325-cap-skaffold:f2abcfb1cac1afa6944ecd8bdd748a025d17"
                      "2b25c0652fd43d2547969357ddcc"),
    (1.772, "stdout", "Starting deploy..."),
    (2.106, "stdout", "Watching for changes..."),
)]


def test_skaffold_stages_from_its_output() -> None:
    found = stages(SKAFFOLD_OUTPUT, SKAFFOLD_MARKS, started=0.0, ended=2.0)
    assert found == pytest.approx({
        "watcher": 0.025, "tags": 0.001, "cache check": 0.001, "start + base": 0.314, "config": 0.016,
        "go build + layers": 1.040, "load": 0.342, "tag": 0.031, "after build": 0.002,
        "deploy -> serving": 0.228})
    assert sum(found.values()) == pytest.approx(2.0)


def test_ansi_colours_are_ignored() -> None:
    assert strip_ansi("\x1b[33mGenerating tags...\x1b[0m") == "Generating tags..."
    found = stages(lines("stdout", (1.2, "\x1b[33mGenerating tags...\x1b[0m")), SKAFFOLD_MARKS, 1.0, 2.0)
    assert found == pytest.approx({"watcher": 0.2, "deploy -> serving": 0.8})


# --- generated configs ----------------------------------------------------------------------------------

def test_ko_yaml_has_kodev_s_ldflags() -> None:
    import yaml

    config = yaml.safe_load(ko_yaml())
    assert config["builds"] == [{"id": "server", "main": "./cmd/server", "env": ["CGO_ENABLED=0"],
                                 "ldflags": ["-buildid=", "-s", "-w"]}]


def test_skaffold_yaml_uses_the_ko_builder_and_the_docker_deployer() -> None:
    import yaml

    config = yaml.safe_load(skaffold_yaml("kodev.bench/abc/s1-skaffold", "127.0.0.1:5000/kodev/static@sha256:00"))
    assert config["apiVersion"].startswith("skaffold/v4")
    assert config["build"]["local"] == {"push": False}
    artifact = config["build"]["artifacts"][0]
    assert artifact["image"] == "kodev.bench/abc/s1-skaffold"
    assert artifact["ko"]["fromImage"] == "127.0.0.1:5000/kodev/static@sha256:00"
    assert artifact["ko"]["ldflags"] == ["-buildid=", "-s", "-w"] and artifact["ko"]["flags"] == ["-trimpath"]
    assert config["deploy"] == {"docker": {"images": ["kodev.bench/abc/s1-skaffold"]}}


def test_air_toml_builds_with_kodev_s_flags() -> None:
    config = tomllib.loads(air_toml(18555, 25))
    assert config["build"]["cmd"] == "go build -trimpath '-ldflags=-buildid= -s -w' -o ./tmp/server ./cmd/server"
    assert config["build"]["args_bin"] == ["-addr", "127.0.0.1:18555"]
    assert config["build"]["delay"] == 25 and config["build"]["include_ext"] == ["go"]


def test_registry_config_listens_on_loopback_only(tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load(config_text(41234, tmp_path))
    assert config["http"] == {"addr": "127.0.0.1:41234"}
    assert config["storage"]["filesystem"] == {"rootdirectory": str(tmp_path)}
    assert "auth" not in config


def test_kodata_symlinks_out_of_kodata_become_files(tmp_path: Path) -> None:
    kodata = tmp_path / "cmd/server/kodata"
    kodata.mkdir(parents=True)
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets/banner.txt").write_text("hi\n")
    (kodata / "banner.txt").symlink_to("../../../assets/banner.txt")
    (kodata / "index.html").write_text("<p>\n")
    (kodata / "inside.html").symlink_to("index.html")
    assert inline_kodata_symlinks(kodata) == ["banner.txt"]
    assert not (kodata / "banner.txt").is_symlink() and (kodata / "banner.txt").read_text() == "hi\n"
    assert (kodata / "inside.html").is_symlink()  # ko accepts a link that stays inside
