"""The `kube_cluster` fixture: one real single-node cluster per test session (per xdist worker; the tests
that use it are scheduled into one worker, see tests/conftest.py), started once and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import _missing
from tests.kube import parts
from tests.kube.cluster import Cluster, ClusterInfo

__all__ = ["ClusterInfo", "kube_cluster"]


@pytest.fixture(scope="session")
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
