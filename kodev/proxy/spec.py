"""What configures one service's dev proxy, and how its addresses are read (`HOST:PORT`, or a bare port for
127.0.0.1). No I/O: the config stage and the CLI use it before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOLD_SECONDS = 30.0


@dataclass(frozen=True)
class ProxySpec:
    """Where the proxy listens, where the app listens, what says it is ready, how long a request may wait."""

    listen: tuple[str, int]
    upstream: tuple[str, int]
    ready: str | None = None  # a path that answers 2xx once the app serves (None: its port accepting)
    hold_seconds: float = DEFAULT_HOLD_SECONDS

    @property
    def address(self) -> str:
        return join(self.listen)


def parse_address(text: str) -> tuple[str, int] | None:
    """`HOST:PORT`, `[IPv6]:PORT` or a bare `PORT` (127.0.0.1); None when it is none of them."""
    text = text.strip()
    host, port = "127.0.0.1", text
    if text.startswith("["):
        closing = text.find("]:")
        if closing < 0:
            return None
        host, port = text[1:closing], text[closing + 2:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
        if ":" in host:
            return None  # an IPv6 address goes in brackets
    if not host or any(c in host for c in "/ @") or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def join(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
