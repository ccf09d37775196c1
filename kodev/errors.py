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


class DaemonConnectionError(DaemonError):
    """The connection to the Docker daemon broke (it stopped or restarted): it never answered the request.

    Not a refusal: nothing is known about what the daemon accepts, so nothing about it is remembered."""


def reworded(exc: KodevError, message: str) -> KodevError:
    """`exc` with another message and the same class (and attributes, such as a compile error's output).

    For adding what happens next ("kodev keeps running ...") without turning a ConfigError into a bare
    KodevError: the class is what `--json` reports as the error's `kind`."""
    again = type(exc).__new__(type(exc), message)
    again.__dict__.update(exc.__dict__)
    again.args = (message,)
    return again
