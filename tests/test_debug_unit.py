"""`kodev debug` without a daemon: where each service's Delve listens, the supervisor's -dlv flags, the
`delve` key of kodev.toml, finding Delve, and the CLI's answers to bad input. The end-to-end session (real
Delve in real containers, an IDE-like client across saves) is tests/integration/test_debug_delve.py."""
# ruff: noqa: F811 - the fixtures imported from test_session_unit are test parameters here

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kodev.config import parse
from kodev.debug import delve
from kodev.debug.delve import DebugSettings, DelveError, find_delve
from kodev.deliver.debugged import DebugTarget, debug_spec, debug_targets
from kodev.deliver.supervision import SwapKit
from kodev.errors import ConfigError
from kodev.gotool import GoTool, find_go
from kodev.platform import Platform
from kodev.services import ContainerSpec, PortBinding
from tests.test_session_unit import go, hello  # noqa: F401 - fixtures


def _spec(service: str, delve_port: int | None = None, network: str | None = None) -> ContainerSpec:
    return ContainerSpec(service=service, name=f"kodev-{service}", command=f"./cmd/{service}", network=network,
                         delve=delve_port)


# --- where Delve listens ------------------------------------------------------------------------------------

def test_unconfigured_services_take_2345_and_up_skipping_the_configured_ports() -> None:
    targets = debug_targets([_spec("a"), _spec("b", 2346), _spec("c"), _spec("d", 9000)])
    assert {name: t.port for name, t in targets.items()} == {"a": 2345, "b": 2346, "c": 2347, "d": 9000}


def test_on_the_host_network_delve_listens_on_loopback_only() -> None:
    host, own = debug_targets([_spec("h", network="host"), _spec("o")]).values()
    assert (host.listen, host.address) == (f"127.0.0.1:{host.port}", f"127.0.0.1:{host.port}")
    # In a network of its own Delve takes every interface of the container; the host sees it on loopback.
    assert (own.listen, own.address) == (f"0.0.0.0:{own.port}", f"127.0.0.1:{own.port}")


def test_off_the_host_network_the_delve_port_is_published_to_loopback_only() -> None:
    spec = _spec("o")
    published = debug_spec(spec, DebugTarget(2399, host_network=False))
    assert published.ports == (PortBinding(2399, "tcp", "127.0.0.1", 2399),)
    assert published.delve == 2399
    host = _spec("h", network="host")
    # The port goes into the spec either way: a reload that moves it makes the running container stale.
    assert debug_spec(host, DebugTarget(2399, host_network=True)) == dataclasses.replace(host, delve=2399)


def test_the_supervisor_gets_its_delve_flags_before_the_app_command() -> None:
    kit = SwapKit(supervisor=Path("/k/supervisor"), mode="copy", root=Path("/k"))
    line = kit.entrypoint("api", ["-dlv", "/kodev/.dlv", "-dlv-listen", "127.0.0.1:2345"])
    separator = line.index("--")
    assert line[separator - 4:separator] == ["-dlv", "/kodev/.dlv", "-dlv-listen", "127.0.0.1:2345"]
    assert line[separator + 1:] == ["/ko-app/api"]
    assert "-dlv" not in kit.entrypoint("api")


# --- kodev.toml: delve = PORT -------------------------------------------------------------------------------

def test_a_delve_port_is_read_per_service(tmp_path: Path) -> None:
    config = parse('[services.api]\ncommand = "./cmd/api"\ndelve = 40000\n[services.web]\ncommand = "./cmd/w"\n',
                   tmp_path / "kodev.toml")
    assert (config.services["api"].delve, config.services["web"].delve) == (40000, None)


@pytest.mark.parametrize(("value", "expected"), [
    ("0", "0 is not a TCP port (1 to 65535)"),
    ("70000", "70000 is not a TCP port (1 to 65535)"),
    ('"2345"', "got a string"),
    ("true", "got a boolean"),
])
def test_a_bad_delve_port_names_the_file_and_key(tmp_path: Path, value: str, expected: str) -> None:
    path = tmp_path / "kodev.toml"
    with pytest.raises(ConfigError) as caught:
        parse(f'[services.api]\ncommand = "./cmd/api"\ndelve = {value}\n', path)
    message = str(caught.value)
    assert str(path) in message and "key 'services.api.delve'" in message and expected in message, message
    assert "\n" not in message


def test_two_services_on_one_delve_port_is_an_error_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "kodev.toml"
    with pytest.raises(ConfigError) as caught:
        parse('[services.aa]\ncommand = "./cmd/a"\ndelve = 2400\n[services.bb]\ncommand = "./cmd/b"\ndelve = 2400\n',
              path)
    message = str(caught.value)
    assert "key 'services.bb.delve'" in message and "services.aa's Delve port" in message, message


# --- finding Delve ------------------------------------------------------------------------------------------

def test_a_named_delve_that_is_missing_says_where_the_name_came_from(go: GoTool) -> None:
    linux = Platform("linux", "amd64")
    with pytest.raises(DelveError, match=r"no Delve at '/nowhere/dlv' \(from --dlv\)"):
        find_delve(go, linux, "/nowhere/dlv", "/also/nowhere")
    with pytest.raises(DelveError, match=r"\(from KODEV_DLV\)"):
        find_delve(go, linux, None, "/nowhere/dlv")


def test_a_named_delve_is_taken_as_it_is(go: GoTool, tmp_path: Path) -> None:
    named = tmp_path / "dlv"
    named.write_text("#!/bin/sh\n")
    named.chmod(0o755)
    assert find_delve(go, Platform("linux", "arm64"), None, str(named)) == named


def test_delve_is_cached_per_go_version_and_container_platform(go: GoTool) -> None:
    """A Delve built for the host would not start in an arm64 container: the platform is in its cache name."""
    names = {delve._cached(go, Platform(*p)).name for p in [("linux", "amd64"), ("linux", "arm64"),
                                                            ("linux", "arm", "v6"), ("linux", "arm", "v7")]}
    assert len(names) == 4
    assert all(name.startswith(f"dlv-{delve.DELVE_VERSION}-{go.version(Path.cwd())}-linux-") for name in names)


def test_without_the_module_proxy_building_delve_is_a_clear_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `go install`, offline with an empty module cache: the error says what to do instead."""
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-modcache"))
    monkeypatch.setenv("KODEV_CACHE_DIR", str(tmp_path / "cache"))
    offline = find_go(None, {})
    with pytest.raises(DelveError) as caught:
        find_delve(offline, Platform("linux", "amd64"))
    message = str(caught.value)
    assert message.startswith(f"cannot build Delve {delve.DELVE_VERSION} with {offline.binary}: "), message
    assert "GOPROXY=off" in message or "module lookup disabled" in message, message
    assert "--dlv PATH or KODEV_DLV" in message and "\n" not in message
    assert not list((tmp_path / "cache" / "delve").iterdir()), "nothing half-built is left as if it were Delve"


def test_debug_settings_are_frozen() -> None:
    settings = DebugSettings(Path("/dlv"))
    with pytest.raises(AttributeError):
        settings.wait = True  # type: ignore[misc]


# --- the CLI ------------------------------------------------------------------------------------------------

def _kodev(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kodev", *args], cwd=cwd, text=True, timeout=60, check=False,
                          capture_output=True)


def test_arguments_after_the_separator_without_a_command_are_refused(hello: Path) -> None:
    done = _kodev("debug", "--json", "--", "--port", "8080", cwd=hello)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    error = next(e for e in events if e["event"] == "error")
    assert done.returncode == 1 and error["kind"] == "ConfigError" and error["fatal"], events
    assert "kodev debug -- --port 8080" in error["message"] and "Name the command" in error["message"]


def test_the_separator_keeps_arguments_apart_from_paths_in_the_help() -> None:
    done = _kodev("debug", "--help", cwd=Path.cwd())
    assert done.returncode == 0 and "[PATH...] [-- ARGS...]" in done.stdout and "--dlv PATH" in done.stdout
