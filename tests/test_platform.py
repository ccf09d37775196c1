"""Platforms: parsing OS/ARCH[/VARIANT], what they mean for `go build`, the image config and the daemon."""

from __future__ import annotations

from typing import Any

import pytest

from kodev.errors import ConfigError
from kodev.platform import Platform, from_daemon, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("linux/riscv64", Platform("linux", "riscv64")),
        ("  linux/s390x\n", Platform("linux", "s390x")),
    ],
)
def test_parse_valid(text: str, expected: Platform) -> None:
    assert parse(text, "--platform") == expected


def test_str_round_trips() -> None:
    assert str(parse("linux/arm/v7", "x")) == "linux/arm/v7"
    assert str(parse("linux/amd64", "x")) == "linux/amd64"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("linux", "OS/ARCH[/VARIANT]"),
        ("", "OS/ARCH[/VARIANT]"),
        ("linux/", "OS/ARCH[/VARIANT]"),
        ("/amd64", "OS/ARCH[/VARIANT]"),
        ("linux/amd64/", "OS/ARCH[/VARIANT]"),
        ("linux/arm/v7/extra", "OS/ARCH[/VARIANT]"),
        ("windows/amd64", "linux only"),
        ("darwin/arm64", "linux only"),
        ("linux/x86_64", "unknown architecture 'x86_64'"),
        ("linux/sparc", "unknown architecture 'sparc'"),
    ],
)
def test_parse_invalid(text: str, detail: str) -> None:
    where = "/src/kodev.toml: platform"
    with pytest.raises(ConfigError) as info:
        parse(text, where)
    message = str(info.value)
    assert message.startswith(where)
    assert f"'{text}'" in message
    assert detail in message


def test_go_env_amd64_plain() -> None:
    assert Platform("linux", "amd64").go_env() == {"GOOS": "linux", "GOARCH": "amd64"}


def test_go_env_amd64_variant() -> None:
    assert Platform("linux", "amd64", "v3").go_env() == {"GOOS": "linux", "GOARCH": "amd64", "GOAMD64": "v3"}


def test_go_env_arm_defaults_to_7() -> None:
    assert Platform("linux", "arm").go_env() == {"GOOS": "linux", "GOARCH": "arm", "GOARM": "7"}


@pytest.mark.parametrize(("variant", "goarm"), [("v5", "5"), ("v6", "6"), ("v7", "7")])
def test_go_env_arm_variant(variant: str, goarm: str) -> None:
    assert Platform("linux", "arm", variant).go_env()["GOARM"] == goarm


def test_go_env_arm64_variant_ignored() -> None:
    env = Platform("linux", "arm64", "v8").go_env()
    assert env == {"GOOS": "linux", "GOARCH": "arm64"}


def test_oci_fields() -> None:
    assert Platform("linux", "amd64").oci() == {"os": "linux", "architecture": "amd64"}
    assert Platform("linux", "arm", "v7").oci() == {"os": "linux", "architecture": "arm", "variant": "v7"}


@pytest.mark.parametrize(
    ("version", "info", "expected"),
    [
        ({"Os": "linux", "Arch": "amd64"}, {"Architecture": "x86_64"}, Platform("linux", "amd64")),
        ({"Os": "linux", "Arch": "arm64"}, {"Architecture": "aarch64"}, Platform("linux", "arm64")),
        ({"Os": "linux", "Arch": "arm"}, {"Architecture": "armv7l"}, Platform("linux", "arm", "v7")),
        ({"Os": "linux", "Arch": "arm"}, {"Architecture": "armv6l"}, Platform("linux", "arm", "v6")),
        # No Arch in /version: the uname -m spelling from /info is mapped to Go's name.
        ({}, {"Architecture": "x86_64"}, Platform("linux", "amd64")),
        ({}, {"Architecture": "aarch64"}, Platform("linux", "arm64")),
        ({}, {"Architecture": "armv7l"}, Platform("linux", "arm", "v7")),
        ({}, {"Architecture": "armv6l"}, Platform("linux", "arm", "v6")),
        ({}, {"Architecture": "i686"}, Platform("linux", "386")),
        ({}, {"Architecture": "ppc64le"}, Platform("linux", "ppc64le")),
        ({"Arch": ""}, {"Architecture": "s390x"}, Platform("linux", "s390x")),
        # Nothing known: linux/amd64.
        ({}, {}, Platform("linux", "amd64")),
    ],
)
def test_from_daemon(version: dict[str, Any], info: dict[str, Any], expected: Platform) -> None:
    assert from_daemon(version, info) == expected


@pytest.mark.parametrize("text", ["linux/amd64/v9", "linux/arm/v8", "linux/386/v1", "linux/arm64/v7"])
def test_unknown_variants_are_refused_naming_them(text: str) -> None:
    with pytest.raises(ConfigError, match=text.rsplit("/", 1)[1]) as caught:
        parse(text, "kodev.toml: platform")
    assert text in str(caught.value) and "kodev.toml: platform" in str(caught.value)


@pytest.mark.parametrize("text", ["linux/amd64/v3", "linux/arm/v6", "linux/arm64/v8"])
def test_known_variants_pass(text: str) -> None:
    assert str(parse(text, "x")) == text
