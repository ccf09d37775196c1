"""The benchmark against the real parts: a generated module builds with `go`, and scenario 1's measuring
code runs one repetition end to end (real kodev watch, shell loop and go build floor, real Docker).

Timings are never asserted here: they come from `python -m bench`, not from the test suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.generate import count_shape, generate
from tests.integration.conftest import REQUIRE_REAL


def test_generated_module_builds(tmp_path: Path, go_binary: str) -> None:
    shape = generate(tmp_path / "m", commands=5, packages=20)
    assert count_shape(shape.root) == (5, 20, 45)
    env = {**os.environ, "CGO_ENABLED": "0"}
    done = subprocess.run([go_binary, "build", "./..."], cwd=shape.root, capture_output=True, text=True,
                          env=env, check=False, timeout=240)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "bin"
    done = subprocess.run([go_binary, "build", "-o", f"{out}/", "./cmd/c00", "./cmd/c04"], cwd=shape.root,
                          capture_output=True, text=True, env=env, check=False, timeout=240)
    assert done.returncode == 0, done.stderr
    printed = subprocess.run([str(out / "c00")], capture_output=True, text=True, check=True).stdout
    assert printed.startswith("c00 ") and printed.strip().endswith("v0")  # c00 imports internal/shared
    assert not subprocess.run([str(out / "c04")], capture_output=True, text=True, check=True
                              ).stdout.strip().endswith("v0")


def test_scenario_1_one_repetition_end_to_end(go_binary: str, docker_client: Any) -> None:
    if shutil.which("docker") is None:
        if REQUIRE_REAL:
            pytest.fail("the docker CLI is required (KODEV_REQUIRE_REAL=1) but missing", pytrace=False)
        pytest.skip("the docker CLI is not available")
    from bench.context import Context, Settings
    from bench.scenarios import edit_to_serving

    context = Context.open(Settings(warmup=0, reps=1))
    try:
        result = edit_to_serving(context)
    finally:
        context.close()
    series = result.tables[0]
    assert [row[0] for row in series.rows] == ["kodev watch", "shell loop", "go build (floor)"]
    assert all(row[-1] == "1" for row in series.rows), series.rows  # one counted repetition each
    assert all(row[1].endswith(" s") for row in series.rows), series.rows  # a time, not "—"
    assert [t.passed is not None for t in result.targets] == [True, True]
    assert not context.work.exists()  # cleaned up
    # The low-level list, filtered: `containers.list()` inspects every container, racing with other tests.
    leftovers = [c["Names"] for c in docker_client.api.containers(all=True, filters={"name": f"kb-{context.uid}"})]
    assert leftovers == []
