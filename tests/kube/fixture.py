"""The `kube_cluster` fixture: one real single-node cluster for the tests of a module (they are scheduled into
one worker and run one after another, see tests/conftest.py), started once and stopped after the last of them,
so it does not idle on the two cores for the rest of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import _missing
from tests.kube import parts
from tests.kube.cluster import Cluster, ClusterInfo

__all__ = ["ClusterInfo", "kube_cluster"]


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory, go_binary: str) -> Iterator[ClusterInfo]:
    try:
        parts.binaries()
        parts.packaged()
    except parts.PartMissing as exc:
        _missing(f"the test cluster: {exc}")
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        info = cluster.start(go_binary)
    except BaseException:
        cluster.stop()
        raise
    yield info
    cluster.stop()
