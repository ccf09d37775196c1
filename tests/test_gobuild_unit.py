"""The `go build` command lines kodev makes: watch and build mode's, and `kodev debug`'s (issue 21)."""

from __future__ import annotations

from pathlib import Path

from kodev.gobuild import DEBUG_GCFLAGS, BuildRequest, _groups, build_args, for_debugging
from kodev.gomod import MainPackage


def _command(name: str = "server") -> MainPackage:
    return MainPackage(import_path=f"example.com/m/cmd/{name}", dir=Path(f"/m/cmd/{name}"),
                       module_path="example.com/m", module_dir=Path("/m"))


def test_a_debug_build_keeps_host_paths_symbols_and_every_variable(tmp_path: Path) -> None:
    watched = BuildRequest(_command(), flags=("-trimpath", "-gcflags=-m", "-tags=dev"),
                           ldflags=("-X=a=b", "-s", "-w"))
    debug = for_debugging(watched)
    args = build_args([debug], tmp_path)
    assert "-trimpath" not in args
    assert args.count(DEBUG_GCFLAGS) == 1 and "-gcflags=-m" not in args  # the user's gcflags would undo -N -l
    assert "-tags=dev" in args
    assert "-ldflags=-buildid= -X=a=b" in args  # no -s, no -w: Delve needs DWARF and the symbol table
    assert "-trimpath" in build_args([watched], tmp_path)


def test_debug_and_ordinary_requests_never_share_a_go_build() -> None:
    ordinary = BuildRequest(_command("api"))
    debug = for_debugging(BuildRequest(_command("worker")))
    assert len(_groups([ordinary, debug])) == 2
    assert len(_groups([debug, for_debugging(BuildRequest(_command("web")))])) == 1
    assert len(_groups([ordinary, BuildRequest(_command("web"), trimpath=False)])) == 2  # -trimpath alone splits
