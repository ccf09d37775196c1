"""Shared fixtures. Unit tests need nothing; integration tests get a real Go and a real Docker daemon.

The suite runs kodev as users run it, unconfigured: swapping binaries in place is on (the product default).
Recreating containers (`KODEV_SWAP=0`) is a variant, asked for by the tests whose scenario differs under it
(the `delivery` and `recreate` fixtures of tests/integration/conftest.py).

The suite runs in parallel (pytest-xdist, see scripts/test). With `--dist loadgroup` the work is scheduled
here (`pytest_xdist_make_scheduler`): each test is a unit of its own, except the users of a costly fixture set
up once per worker (`_SHARED_SETUPS`) and the files that use names every run shares (`_SERIAL_GROUPS`), which
run together in one worker; the tests known to run longest start first (`_LONG`). Each worker has a basetemp,
so a kodev cache, of its own; ports come from tests/integration/process.py's `free_port`, reserved across
processes; containers, images and module paths are named after each test.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# Module- or session-scoped fixtures whose set-up costs more than sharing a worker does: a Podman service
# (~20 s), a base image imported and saved, a supervised app built. (A private dockerd starts in a few seconds
# and its tests run long: they are spread, each worker that gets one starts its own.) The Kubernetes cluster
# (tests/kube: ~10 s, and two cores cannot carry two) runs once, in the worker its tests go to.
_SHARED_SETUPS = frozenset({"podman_host", "made_base", "rig", "kube_cluster"})
# Files whose tests build images under kodev's default names (kodev.local/api, kodev.local/worker: examples/
# compose without a kodev.toml), which one test may retag while another runs their containers: one worker.
_SERIAL_GROUPS = {
    "tests/integration/test_compose_resolve.py": "compose-default-names",
    "tests/integration/test_compose_lifecycle.py": "compose-default-names",
}
# Node ID prefixes of the tests that run longest (scripts/test --durations=40), started first so that none
# of them is left to run alone at the end.
_LONG = (
    "tests/integration/test_disk_and_huge_inputs.py::test_kodata_tree_of_20000_files",
    "tests/integration/test_disk_and_huge_inputs.py::test_one_gigabyte_kodata_file",
    "tests/integration/test_disk_and_huge_inputs.py::test_many_rebuilds_keep_images_and_cache_bounded",
    "tests/integration/test_default_path.py::test_a_daemon_restart_mid_watch",
    "tests/integration/test_reliability.py::test_daemon_",
    "tests/integration/test_reliability.py::test_quick_daemon_restart",
    "tests/integration/test_newcomer.py::test_the_suite_passes_with_the_quick_start_edits",
    "tests/integration/test_bench_smoke.py::",
    "tests/integration/test_bases.py::test_large_base_is_sent_once",
    "tests/integration/test_debug_delve.py::",  # builds Delve: ~85 s of CPU where Go's build cache is cold
    "tests/integration/test_kube_watch.py::",  # one worker, one cluster: ~2 min in all
)


@functools.cache
def _shared_setup_users(path: str) -> frozenset[str]:
    """The test functions of the file at `path` (relative to the repository) that use one of `_SHARED_SETUPS`,
    directly or through other fixtures of that file (read from its source: the scheduler runs in pytest's
    controller, which collects nothing)."""
    try:
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    uses: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            uses[node.name] = {argument.arg for argument in arguments}
    shared = set(_SHARED_SETUPS)
    grown = True
    while grown:  # fixtures of the file that depend on a shared one share it too
        users = {name for name, needs in uses.items() if not name.startswith("test") and needs & shared}
        grown = not users <= shared
        shared |= users
    return frozenset(name for name, needs in uses.items() if name.startswith("test") and needs & shared)


def _work_unit(nodeid: str) -> str:
    """The unit of work (a scope, for xdist) the test `nodeid` belongs to: tests of one unit run in one worker."""
    path = nodeid.split("::", 1)[0]
    if path in _SERIAL_GROUPS:
        return _SERIAL_GROUPS[path]
    function = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
    if path.endswith(".py") and function in _shared_setup_users(path):
        return f"{path}::{' + '.join(sorted(_SHARED_SETUPS))}"
    return nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`: xdist's scope scheduling over `_work_unit`. (xdist's own loadgroup reads
    `xdist_group` marks from the node IDs, which it can no longer rename under pytest 9.2.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type information
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return Units(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker: the longest tests first, then the tests sharing a unit, then the other integration tests,
    then the unit tests (each worker collects the same order; xdist hands units out in it, the larger units
    first)."""
    if not hasattr(config, "workerinput"):
        return  # a serial run keeps pytest's order

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(_LONG):
            return 0
        if _work_unit(item.nodeid) != item.nodeid:
            return 1
        return 2 if "/integration/" in item.nodeid else 3

    items.sort(key=rank)  # stable: pytest's order within each rank (module fixtures stay together)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kodev's layer cache lives in one directory per test session (per xdist worker: each has a basetemp of
    its own), never the user's; kodev runs with its defaults, whatever the shell running the tests set."""
    cache = tmp_path_factory.getbasetemp() / "kodev-cache"
    monkeypatch.setenv("KODEV_CACHE_DIR", str(cache))
    for name in ("SOURCE_DATE_EPOCH", "KO_DATA_DATE_EPOCH", "KODEV_SWAP", "KODEV_SWAP_COPY"):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("GOTOOLCHAIN", "local")
    yield


# What the shell running the tests says GOPROXY is (None: Go's default, the module proxy), kept for the tests
# marked `module_proxy` before `_no_module_proxy` turns it off.
GOPROXY_OUTSIDE = os.environ.get("GOPROXY")


@pytest.fixture(scope="session", autouse=True)
def _no_module_proxy() -> Iterator[None]:
    """Go downloads nothing (GOPROXY=off) in the fast core of the suite: its modules are standard-library-only
    or vendored. Session-wide, so that session and module fixtures (which run before any function fixture)
    are held to it too; `_module_proxy_when_marked` gives it back to the tests that need it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOPROXY", "off")
        yield


@pytest.fixture(autouse=True)
def _module_proxy_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """GOPROXY=off for every test but those marked `module_proxy`, which get the shell's GOPROXY (unset: Go's
    default proxy). GOFLAGS and the rest of Go's environment stay as they are."""
    if request.node.get_closest_marker("module_proxy") is None:
        monkeypatch.setenv("GOPROXY", "off")
    elif GOPROXY_OUTSIDE is None:
        monkeypatch.delenv("GOPROXY", raising=False)
    else:
        monkeypatch.setenv("GOPROXY", GOPROXY_OUTSIDE)
