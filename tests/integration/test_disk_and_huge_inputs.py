"""kodev's disk use over many rebuilds, and huge inputs (issue 6): real Go, real dockerd.

Twenty rebuilds keep the daemon's images and the layer cache within bounds and never touch an image kodev
did not make; a 1 GB kodata file is streamed, not held in memory; a kodata tree of 20,000 files builds.
Tests that inspect kodev's cache give kodev a cache directory of their own (`cache_dir`). Each test reads
kodev's `--json` events (tests/integration/json_events.py), never its human text.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tests.integration.json_events import Finished, finished
from tests.integration.modules import (
    Module,
    clean_daemon,
    layer_files,
    run_json,
    set_greeting,
    stop_cleanly,
    watching,
)
from tests.integration.process import fetch, free_port, wait_for_page

# --- disk ---------------------------------------------------------------------------------------------------

def layers_bytes(cache: Path) -> int:
    return sum(length for _, length in layer_files(cache))


def test_many_rebuilds_keep_images_and_cache_bounded_and_never_touch_foreign_images(
        mod: Module, cache_dir: Path) -> None:
    import io

    import docker.errors

    client = mod.client
    # An image kodev did not make, under the very tag kodev is about to use.
    tiny = io.BytesIO()
    with tarfile.open(fileobj=tiny, mode="w") as archive:
        info = tarfile.TarInfo("note.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    client.api.import_image_from_data(tiny.getvalue(), repository=f"{mod.repo}/server", tag="latest")
    foreign_image = client.api.inspect_image(f"{mod.repo}/server:latest")["Id"]
    sdk_port = free_port()
    sdk_container = None
    edits = 6  # each round adds two binary layers (~10 MB): the 25 MB budget is crossed twice over
    try:
        with watching(mod, env={"KODEV_CACHE_DIR": str(cache_dir), "KODEV_CACHE_MAX_MB": "25"},
                      extra='\n[commands."./cmd/hello"]\n') as s:
            # A container made by plain `docker run` from kodev's image of the moment.
            first_image = client.api.inspect_image(f"{mod.repo}/server:latest")["Id"]
            sdk_container = client.containers.run(first_image, ["-addr", f"127.0.0.1:{sdk_port}"], detach=True,
                                                  network_mode="host", name=mod.name("sdk"))
            wait_for_page(f"http://127.0.0.1:{sdk_port}/", "Hello, kodev!", timeout=30)
            largest = 0
            for i in range(1, edits + 1):
                set_greeting(mod, f"Edit {i}")
                s.events.wait_rebuilt("server", count=i)
                largest = max(largest, layers_bytes(cache_dir))
                if i % 3 == 0:
                    for command in ("server", "hello"):
                        count = len(mod.images(command))
                        assert count <= 3, f"{count} {command} images after {i} rebuilds\n{s.proc.output()}"
            s.page(f"Edit {edits}, kodev!", timeout=30)
            s.events.wait_rebuilt("hello", count=edits)  # services go first: the image-only hello follows
            assert len(s.rebuilt("hello")) == edits, s.proc.output()
            assert largest < 35 << 20, f"the layer cache grew to {largest >> 20} MB with a 25 MB budget"
            assert s.events.fatal() == [], s.proc.output()
            stop_cleanly(s)
        for command in ("server", "hello"):
            assert len(mod.images(command)) <= 3, f"{command}: {mod.images(command)}"
        # Never touched: the imported image it took the tag from, the image a foreign container uses.
        assert client.api.inspect_image(foreign_image)["Id"] == foreign_image
        assert client.api.inspect_image(first_image)["Id"] == first_image
        sdk_container.reload()
        assert sdk_container.status == "running"
        assert "Hello, kodev!" in (fetch(f"http://127.0.0.1:{sdk_port}/") or "")
    finally:
        if sdk_container is not None:
            with contextlib.suppress(Exception):
                sdk_container.remove(force=True)
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(foreign_image, force=True)


# --- huge inputs ---------------------------------------------------------------------------------------------

def peak_rss_kb(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[Finished, int]:
    """Run `kodev ARGS --json`; its events and peak resident set size (kB), via /usr/bin/time or by polling
    VmHWM."""
    full_env = {**os.environ, **env}
    command = [sys.executable, "-m", "kodev", *args[:1], "--json", *args[1:]]
    if Path("/usr/bin/time").exists():
        done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=300, check=False)
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        assert found, done.stderr
        return finished(done), int(found.group(1))
    process = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{process.pid}/status").read_text()
            found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if found:
                peak = max(peak, int(found.group(1)))
        time.sleep(0.05)
    out, err = process.communicate()
    return finished(subprocess.CompletedProcess(command, process.returncode, out, err)), peak


def test_one_gigabyte_kodata_file_is_streamed_not_held_in_memory(mod: Module, cache_dir: Path) -> None:
    huge = mod.path / "cmd/server/kodata/huge.bin"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)  # sparse, but kodev still reads, hashes, writes and sends every byte
    try:
        done, peak = peak_rss_kb(["build", "./cmd/server"], mod.path, {"KODEV_CACHE_DIR": str(cache_dir)})
        assert done.returncode == 0, done.output()
        [result] = done.all("command.result")
        assert peak < 200 * 1024, f"peak RSS {peak // 1024} MB building with a 1 GB kodata file"
        image = mod.client.api.inspect_image(f"{mod.repo}/server:latest")
        assert image["Size"] >= 1 << 30, image["Size"]
        assert result["image_id"] == image["Id"], result
    finally:
        huge.unlink(missing_ok=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
        clean_daemon(mod)


def test_kodata_tree_of_20000_files_builds(mod: Module, cache_dir: Path) -> None:
    many = mod.path / "cmd/server/kodata/many"
    for d in range(200):
        directory = many / f"d{d:03d}"
        directory.mkdir(parents=True)
        for f in range(100):
            (directory / f"f{f:03d}.txt").write_text(f"{d}/{f}\n")
    done = run_json(["build", "./cmd/server"], mod.path, {"KODEV_CACHE_DIR": str(cache_dir)}, timeout=180)
    assert done.returncode == 0, done.output()
    layers = mod.client.api.inspect_image(f"{mod.repo}/server:latest")["RootFS"]["Layers"]
    kodata = cache_dir / "layers" / f"{layers[-2].removeprefix('sha256:')}.tar"
    with tarfile.open(kodata) as archive:
        names = [member.name for member in archive]
    files = [n for n in names if n.startswith("var/run/ko/many/") and n.endswith(".txt")]
    assert len(files) == 20000, len(files)
    assert "var/run/ko/many/d199/f099.txt" in names
