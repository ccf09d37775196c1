"""Shared fixtures. Unit tests need nothing; integration tests get a real Go and a real Docker daemon."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kodev's layer cache lives in one directory per test session, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "kodev-cache"
    monkeypatch.setenv("KODEV_CACHE_DIR", str(cache))
    for name in ("SOURCE_DATE_EPOCH", "KO_DATA_DATE_EPOCH"):
        monkeypatch.delenv(name, raising=False)
    # The tests of the recreate delivery see it on every change; swapping in place is tested where a test
    # asks for it (KODEV_SWAP=1: tests/integration/test_swap.py).
    monkeypatch.setenv("KODEV_SWAP", "0")
    os.environ.setdefault("GOTOOLCHAIN", "local")
    yield
