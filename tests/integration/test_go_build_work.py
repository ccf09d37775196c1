"""A go build kodev gives up (newer saves came) is killed, and a killed go cannot remove its work directory:
kodev gives each go build one of its own (GOTMPDIR) and removes it. Real Go, a cold build cache of its own
(so that the build is still compiling when it is given up), examples/hello; no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from kodev.gobuild import BuildRequest, Superseded, compile_commands
from kodev.gomod import resolve_commands
from kodev.gotool import find_go
from tests.examples import copy_example


def test_a_go_build_given_up_leaves_no_work_directory(tmp_path: Path, go_binary: str) -> None:
    module = copy_example("hello", tmp_path / "hello")
    go = find_go(go_binary, {"GOFLAGS": "", "GOPROXY": "off", "GOCACHE": str(tmp_path / "cache")})
    command = resolve_commands(go, ["./cmd/server"], module)[0]
    out = tmp_path / "out"
    seen: list[Path] = []

    def superseded() -> bool:  # given up once go has made its work directory: in kodev's
        seen[:] = list(out.glob("gotmp-*/go-build*"))
        return bool(seen)

    with pytest.raises(Superseded):
        compile_commands(go, [BuildRequest(command)], out, superseded=superseded)
    assert seen, "go made its work directory where kodev told it to"
    assert not list(out.rglob("gotmp-*")), "and kodev removed it after killing go"
