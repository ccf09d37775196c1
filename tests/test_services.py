"""Container settings parsed as the docker CLI parses them; every bad spec is a ConfigError naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kodev.config import ServiceConfig
from kodev.errors import ConfigError
from kodev.services import (
    ContainerSpec,
    Mount,
    PortBinding,
    container_name,
    container_spec,
    parse_env,
    parse_port,
    parse_volume,
    read_env_file,
)

WHERE = "services.web"


def assert_config_error(excinfo: pytest.ExceptionInfo[ConfigError], *named: str) -> None:
    message = str(excinfo.value)
    for item in named:
        assert item in message, f"{item!r} not named in {message!r}"


# --- ports ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ("8080", PortBinding(8080, "tcp", None, None)),
    ("80/udp", PortBinding(80, "udp", None, None)),
    ("8080:80", PortBinding(80, "tcp", None, 8080)),
    ("8080:80/tcp", PortBinding(80, "tcp", None, 8080)),
    ("5353:53/udp", PortBinding(53, "udp", None, 5353)),
    ("9000:9000/sctp", PortBinding(9000, "sctp", None, 9000)),
    ("127.0.0.1:8080:80", PortBinding(80, "tcp", "127.0.0.1", 8080)),
    ("127.0.0.1:8080:80/udp", PortBinding(80, "udp", "127.0.0.1", 8080)),
    ("127.0.0.1::80", PortBinding(80, "tcp", "127.0.0.1", None)),  # the daemon picks the host port
    ("0.0.0.0:1:65535", PortBinding(65535, "tcp", "0.0.0.0", 1)),
    ("[::1]:8080:80", PortBinding(80, "tcp", "::1", 8080)),
    ("[::]::80/udp", PortBinding(80, "udp", "::", None)),
    ("  8080:80  ", PortBinding(80, "tcp", None, 8080)),
])
def test_parse_port(spec: str, expected: PortBinding) -> None:
    assert parse_port(spec, WHERE) == expected


@pytest.mark.parametrize("spec", [
    "notaport",
    "",
    "http",
    "80:http",
    "8080:80/http",  # unknown protocol
    "8080:80/",
    "8080-8090:80",
    "-1:80",
    "8080:80:90",
    "localhost:8080:80",  # docker wants an IP, not a host name
    "127.0.0.1:80",  # HOST_IP without HOST_PORT: docker rejects it ("invalid hostPort")
])
def test_parse_port_rejects_garbage(spec: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_port(spec, WHERE)
    assert_config_error(excinfo, repr(spec), WHERE)


@pytest.mark.parametrize("spec", ["0", "0:80", "8080:0", "70000:80", "8080:70000", "65536", "127.0.0.1:99999:80"])
def test_parse_port_rejects_out_of_range_numbers(spec: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_port(spec, "kodev run")
    assert_config_error(excinfo, repr(spec), "kodev run", "65535")


@pytest.mark.parametrize("spec", [
    "256.0.0.1:8080:80",
    "127.0.0.999:8080:80",
    "1.2.3:8080:80",  # three parts: not an IPv4 address
    "1.2.3.4.5:8080:80",  # five parts
    "127..0.1:8080:80",
    "[1::2::3]:8080:80",  # two '::' in an IPv6 address
])
def test_parse_port_rejects_bad_ip(spec: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_port(spec, WHERE)
    assert_config_error(excinfo, repr(spec), WHERE)


# --- volumes -------------------------------------------------------------------------------------------

def test_parse_volume_relative_source_resolved_against_base_dir(tmp_path: Path) -> None:
    mount = parse_volume("./data:/data", tmp_path, WHERE)
    assert mount == Mount(str((tmp_path / "data").resolve()), "/data", False)
    assert Path(mount.source).is_absolute()


def test_parse_volume_parent_relative(tmp_path: Path) -> None:
    base = tmp_path / "a" / "b"
    mount = parse_volume("../c:/c:ro", base, WHERE)
    assert mount == Mount(str((tmp_path / "a" / "c").resolve()), "/c", True)


def test_parse_volume_resolves_symlinked_base(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert parse_volume("./x:/x", tmp_path / "link", WHERE).source == str(real.resolve() / "x")


def test_parse_volume_absolute_source(tmp_path: Path) -> None:
    assert parse_volume("/etc/ssl:/etc/ssl:ro", tmp_path, WHERE) == Mount("/etc/ssl", "/etc/ssl", True)


def test_parse_volume_home_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    mount = parse_volume("~/cfg:/cfg", Path("/somewhere/else"), WHERE)
    assert mount.source == str((tmp_path / "home" / "cfg").resolve())


@pytest.mark.parametrize(("spec", "read_only"), [("./d:/d:ro", True), ("./d:/d:rw", False), ("./d:/d", False)])
def test_parse_volume_modes(tmp_path: Path, spec: str, read_only: bool) -> None:
    assert parse_volume(spec, tmp_path, WHERE).read_only is read_only


@pytest.mark.parametrize("name", ["data", "my-volume", "cache_1", "v.2"])
def test_parse_volume_named_volume(tmp_path: Path, name: str) -> None:
    mount = parse_volume(f"{name}:/var/lib/data:ro", tmp_path, WHERE)
    assert mount == Mount(name, "/var/lib/data", True)  # a name stays a name, never a path


@pytest.mark.parametrize("spec", [
    "nocolon",
    ":/data",
    "./data:",
    "./a:/b:ro:extra",
    "",
    "bad name:/data",
    "-vol:/data",
])
def test_parse_volume_rejects_malformed(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_volume(spec, tmp_path, WHERE)
    assert_config_error(excinfo, repr(spec), WHERE)


@pytest.mark.parametrize("mode", ["rx", "RO", "z", "readonly"])
def test_parse_volume_rejects_bad_mode(tmp_path: Path, mode: str) -> None:
    spec = f"./data:/data:{mode}"
    with pytest.raises(ConfigError) as excinfo:
        parse_volume(spec, tmp_path, WHERE)
    assert_config_error(excinfo, repr(spec), WHERE, repr(mode))


@pytest.mark.parametrize("target", ["data", "./data", "relative/path"])
def test_parse_volume_rejects_relative_destination(tmp_path: Path, target: str) -> None:
    spec = f"./data:{target}"
    with pytest.raises(ConfigError) as excinfo:
        parse_volume(spec, tmp_path, WHERE)
    assert_config_error(excinfo, repr(spec), WHERE, "absolute")


# --- env -----------------------------------------------------------------------------------------------

def test_parse_env_key_value() -> None:
    assert parse_env(["A=1", "B=", "C=x=y", "PATHLIKE=/a:/b", "SPACED=two words"], WHERE) == (
        "A=1", "B=", "C=x=y", "PATHLIKE=/a:/b", "SPACED=two words")


def test_parse_env_key_alone_passes_the_host_value_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_TEST_PASSED", "from host")
    monkeypatch.setenv("KODEV_TEST_EMPTY", "")
    assert parse_env(["KODEV_TEST_PASSED", "KODEV_TEST_EMPTY"], WHERE) == (
        "KODEV_TEST_PASSED=from host", "KODEV_TEST_EMPTY=")


def test_parse_env_key_alone_not_set_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KODEV_TEST_UNSET", raising=False)
    assert parse_env(["A=1", "KODEV_TEST_UNSET", "B=2"], WHERE) == ("A=1", "B=2")


def test_parse_env_explicit_value_wins_over_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_TEST_X", "host")
    assert parse_env(["KODEV_TEST_X=given"], WHERE) == ("KODEV_TEST_X=given",)


@pytest.mark.parametrize("item", ["=x", "=", "", "A B=1", " A=1", "A\t=1"])
def test_parse_env_rejects_bad_keys(item: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_env(["OK=1", item], WHERE)
    assert_config_error(excinfo, repr(item), WHERE)


def test_read_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_TEST_FROM_HOST", "passed")
    monkeypatch.delenv("KODEV_TEST_NOT_SET", raising=False)
    env_file = tmp_path / "app.env"
    env_file.write_text("# a comment\n\nA=1\n   # an indented comment\n   \nB=two words\n"
                        "KODEV_TEST_FROM_HOST\nKODEV_TEST_NOT_SET\nURL=http://x/?a=b#frag\n")
    assert read_env_file(env_file, WHERE) == ("A=1", "B=two words", "KODEV_TEST_FROM_HOST=passed",
                                              "URL=http://x/?a=b#frag")


def test_read_env_file_empty(tmp_path: Path) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("# nothing here\n\n")
    assert read_env_file(env_file, WHERE) == ()


def test_read_env_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(ConfigError) as excinfo:
        read_env_file(missing, WHERE)
    assert_config_error(excinfo, str(missing), WHERE)


def test_read_env_file_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        read_env_file(tmp_path, WHERE)
    assert_config_error(excinfo, str(tmp_path), WHERE)


def test_read_env_file_bad_line_names_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("A=1\n=oops\n")
    with pytest.raises(ConfigError) as excinfo:
        read_env_file(env_file, WHERE)
    assert_config_error(excinfo, str(env_file), WHERE, "'=oops'")


# --- names ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["web", "Web2", "my-app_1.2", "0start", "ab"])
def test_container_name_valid(name: str) -> None:
    assert container_name(name, WHERE) == name


@pytest.mark.parametrize("name", ["", "a", "7", "-web", "_web", ".web", "has space", "a/b", "tab\t", "ümlaut",
                                  "x:y"])
def test_container_name_invalid(name: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        container_name(name, WHERE)
    assert_config_error(excinfo, repr(name), WHERE)


# --- the whole spec ------------------------------------------------------------------------------------

def test_container_spec_from_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODEV_TEST_TOKEN", "secret")
    (tmp_path / ".env").write_text("# defaults\nLOG_LEVEL=info\nFROM_FILE=1\n")
    service = ServiceConfig(
        name="web", command="./cmd/server", args=("-addr", "127.0.0.1:8080"),
        env=("LOG_LEVEL=debug", "KODEV_TEST_TOKEN"), env_file=".env",
        ports=("127.0.0.1:8080:8080/tcp", "9090"), network="host", volumes=("./data:/data:ro", "cache:/cache"),
        user="65532", stop_timeout=3, restart=False)
    spec = container_spec(service, tmp_path, WHERE)
    assert spec == ContainerSpec(
        service="web", name="web", command="./cmd/server", args=("-addr", "127.0.0.1:8080"),
        # the env file first, then env: a later value wins, as with docker's --env-file and -e
        env=("LOG_LEVEL=info", "FROM_FILE=1", "LOG_LEVEL=debug", "KODEV_TEST_TOKEN=secret"),
        ports=(PortBinding(8080, "tcp", "127.0.0.1", 8080), PortBinding(9090, "tcp", None, None)),
        network="host",
        mounts=(Mount(str((tmp_path / "data").resolve()), "/data", True), Mount("cache", "/cache", False)),
        user="65532", stop_timeout=3, remove_on_exit=True, restart=False)


def test_container_spec_defaults_and_name_override(tmp_path: Path) -> None:
    spec = container_spec(ServiceConfig(name="server", command="./cmd/server"), tmp_path, "kodev run",
                          name="my-server", remove_on_exit=False)
    assert spec.service == "server"
    assert spec.name == "my-server"
    assert (spec.args, spec.env, spec.ports, spec.mounts) == ((), (), (), ())
    assert spec.network is None and spec.user is None
    assert spec.stop_timeout == 10
    assert spec.remove_on_exit is False
    assert spec.restart is True


def test_container_spec_env_file_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.env").write_text("X=1\n")
    cwd = os.getcwd()
    spec = container_spec(ServiceConfig(name="wk", command="./cmd/w", env_file="conf/app.env"), tmp_path, WHERE)
    assert spec.env == ("X=1",)
    assert os.getcwd() == cwd


@pytest.mark.parametrize(("field", "value", "culprit"), [
    ("ports", ("notaport",), "'notaport'"),
    ("volumes", ("nocolon",), "'nocolon'"),
    ("env", ("=x",), "'=x'"),
    ("env_file", "missing.env", "missing.env"),
    ("network", "bad network!", "'bad network!'"),
    ("name", "-bad", "'-bad'"),
])
def test_container_spec_errors_name_the_service(tmp_path: Path, field: str, value: object, culprit: str) -> None:
    settings: dict[str, object] = {"name": "web", "command": "./cmd/server", field: value}
    service = ServiceConfig(**settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as excinfo:
        container_spec(service, tmp_path, WHERE)
    assert_config_error(excinfo, culprit, WHERE)
