"""kodev.network: on a daemon without a bridge, published ports are an error and the default network a warning.

The checks on specs are pure. `has_bridge` is tested against the real bridge-less dockerd in
tests/integration/test_newcomer.py; the with-bridge answer uses a tiny fake client here, because the test
daemon has no bridge (and must not get one: it may not change the host's network).
"""

from __future__ import annotations

from typing import Any

import pytest

from kodev.errors import ConfigError
from kodev.network import Origin, check, check_spec, has_bridge
from kodev.services import ContainerSpec, parse_port

RUN = Origin("kodev run", "`--network host` (and no -p)")
TOML = Origin("/m/kodev.toml: services.api", 'network = "host" in that table (and no ports)')


def spec(network: str | None = None, *ports: str) -> ContainerSpec:
    return ContainerSpec(service="api", name="api", command="./cmd/api", network=network,
                         ports=tuple(parse_port(p, "test") for p in ports))


@pytest.mark.parametrize("network", [None, "bridge", "none"])
def test_published_ports_without_a_bridge_are_an_error_naming_the_origin_and_the_fix(network: str | None) -> None:
    with pytest.raises(ConfigError) as raised:
        check_spec(spec(network, "127.0.0.1:8080:80", "[::1]:9090:90/udp"), TOML, bridge=False)
    message = str(raised.value)
    assert message.startswith("/m/kodev.toml: services.api: publishes 127.0.0.1:8080:80/tcp, [::1]:9090:90/udp")
    assert "--bridge=none" in message and 'network = "host"' in message


def test_the_default_network_without_a_bridge_is_a_warning() -> None:
    warning = check_spec(spec(), RUN, bridge=False)
    assert warning is not None
    assert warning.startswith("kodev run: ") and "`--network host`" in warning and "'api'" in warning


@pytest.mark.parametrize("network", ["host", "none", "my-network", "container:other"])
def test_no_warning_for_a_chosen_network_without_ports(network: str) -> None:
    assert check_spec(spec(network), RUN, bridge=False) is None


def test_host_network_with_ports_is_left_to_docker() -> None:
    assert check_spec(spec("host", "8080:8080"), RUN, bridge=False) is None


def test_user_defined_networks_are_left_to_docker() -> None:
    assert check_spec(spec("my-network", "8080:8080"), RUN, bridge=False) is None


def test_with_a_bridge_nothing_is_said() -> None:
    assert check_spec(spec(None, "8080:8080"), RUN, bridge=True) is None
    assert check_spec(spec(), RUN, bridge=True) is None


class FakeClient:
    """A fake docker client: the networks of a daemon that has a bridge (the test dockerd has none)."""

    def __init__(self, names: list[str]) -> None:
        self.api = self
        self.names = names
        self.asked = 0

    def networks(self, names: list[str]) -> list[dict[str, Any]]:
        self.asked += 1
        # The daemon's name filter matches substrings ("bridge" finds "my-bridge-net" too).
        return [{"Name": n} for n in self.names if any(wanted in n for wanted in names)]


def test_has_bridge_wants_the_network_named_bridge_exactly() -> None:
    assert has_bridge(FakeClient(["bridge", "host", "none"]))
    assert not has_bridge(FakeClient(["my-bridge-net", "host", "none"]))


def test_check_on_a_daemon_with_a_bridge_passes_ports() -> None:
    client = FakeClient(["bridge", "host", "none"])
    assert check(client, [(spec(None, "8080:8080"), RUN), (spec(), RUN)]) == []
    assert client.asked == 1


def test_check_does_not_ask_the_daemon_when_every_network_is_chosen() -> None:
    client = FakeClient([])
    assert check(client, [(spec("host"), RUN)]) == []
    assert client.asked == 0
