"""Errors a user can cause. The CLI prints them as one paragraph, without a traceback."""

from __future__ import annotations


class KodevError(Exception):
    """Something the user can fix; the message says what and how."""


class ConfigError(KodevError):
    """kodev.toml (or a flag) is malformed, has an unknown key or a wrong type."""


class GoError(KodevError):
    """The Go toolchain is missing, or a path is not a buildable `package main`."""


class CompileError(GoError):
    """`go build` failed; `output` is the compiler's output exactly as it printed it."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class ImageError(KodevError):
    """An image could not be assembled (kodata symlinks, unreadable files, base images)."""


class DaemonError(KodevError):
    """The Docker daemon is unreachable or refused an operation."""
