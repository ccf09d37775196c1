"""Scenario: swapping the binary in place — the copy path, the window of refused connections, a large binary.

Contenders alternate on their own copies of examples/hello, with kodev watch's `go build` flags everywhere:
kodev through the bind mount (the default here), kodev forced to copy (`KODEV_SWAP_COPY=1`), and the
`go build` floor. Then, with a poller connecting to the server every 2 ms during swaps, the longest run of
refused connections; then a ~90 MB binary (an embedded blob), on the static base and on a large base.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from bench.contenders import PAUSE, GoFloor, KodevServer, big_base, rounds
from bench.context import Context
from bench.measure import BenchError, Series, median, pair_differences
from bench.results import ScenarioResult, Table, Target, millis, series_table

BLOB_MB = 80  # embedded into the server: with the program itself, a binary of about 90 MB
POLL_SECONDS = 0.002


class RefusedWindow:
    """Connects to 127.0.0.1:port every 2 ms in a thread; the longest run of failed connects it saw."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def __enter__(self) -> RefusedWindow:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failing_since: float | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if failing_since is not None:
                    self.longest = max(self.longest, now - failing_since)
                    failing_since = None
            except OSError:
                failing_since = failing_since if failing_since is not None else now
            time.sleep(POLL_SECONDS)


def _with_blob(server: KodevServer | GoFloor) -> None:
    """Make the server ~90 MB: an embedded blob of random bytes (incompressible, as real code is not)."""
    directory = server.module / "cmd" / "server"
    with open(directory / "blob.bin", "wb") as out:
        for _ in range(BLOB_MB):
            out.write(os.urandom(1_000_000))
    # The blob must be read at run time, or the linker drops it (a bare `_ = len(blob)` is dead code:
    # the binary stayed 5.9 MB until this was noticed).
    (directory / "blob.go").write_text(
        'package main\n\nimport _ "embed"\n\n//go:embed blob.bin\nvar blob []byte\n\n'
        "func init() {\n\tif len(blob) > 1 && blob[0] == 0 && blob[len(blob)-1] == 0 {\n"
        '\t\tprintln("the blob starts and ends with zero")\n\t}\n}\n')


def _beyond_go(served: float, stages: dict[str, float]) -> float:
    """Edit to serving less kodev's `go build`: the watcher, the binary's digest, the swap and the app's
    restart until it answers — what a larger binary could make slower (the image follows, off the path)."""
    return served - stages["go"] if "go" in stages else float("nan")


def swap_in_place(context: Context) -> ScenarioResult:
    """Swap in place (copy path, refused connections, a 90 MB binary)"""
    result = ScenarioResult(
        7, "Swap in place (copy path, refused connections, a 90 MB binary)",
        "The same one-line edit of `cmd/server/main.go` as scenario 1, timed from the write until the page "
        "serves the token. kodev swaps the new binary into the running container (its supervisor restarts "
        "the app); `KODEV_SWAP_COPY=1` forces the copy into the container instead of the bind mount. The "
        "refused-connection window is the longest run of failed TCP connects of a client polling every "
        "2 ms during swaps. The large binary embeds 80 MB of random bytes; it is swapped on the `static` "
        "base, on a large base, and by copy; its time is edit to serving less kodev's `go build` (the "
        "watcher, the binary's digest, the swap, the app's restart).")
    mount = KodevServer(context, "s7-mount")
    copy = KodevServer(context, "s7-copy", env={"KODEV_SWAP_COPY": "1"})
    floor = GoFloor(context, "s7-floor")
    series = [Series("kodev (bind mount)"), Series("kodev (copy)"), Series("go build (floor)")]
    windows: list[float] = []
    try:
        mount.start()
        copy.start()
        floor.build()
        for index, counted in rounds(context):
            token = f"{context.uid}-s7-{index}"
            m, _ = mount.measure(f"mount-{token}")
            time.sleep(PAUSE)
            c, _ = copy.measure(f"copy-{token}")
            time.sleep(PAUSE)
            f = floor.measure(f"floor-{token}")
            time.sleep(PAUSE)
            context.log(f"scenario 7 round {index + 1}{'' if counted else ' (warm-up)'}: mount {m:.3f}s, "
                        f"copy {c:.3f}s, go build {f:.3f}s")
            if counted:
                for one, value in zip(series, (m, c, f), strict=True):
                    one.values.append(value)
        for index in range(max(3, context.settings.reps)):
            with RefusedWindow(mount.port) as poller:
                mount.measure(f"window-{context.uid}-{index}")
                time.sleep(0.2)  # the poller sees the server answer again
            windows.append(poller.longest)
            context.log(f"scenario 7 refused window {index + 1}: {poller.longest * 1000:.1f} ms")
    finally:
        mount.stop()
        copy.stop()

    big: dict[str, list[float]] = {}
    big_sizes: list[float] = []
    handoffs: dict[str, list[float]] = {}  # kodev's own swap stage: the binary handed to the supervisor
    large = big_base(context, context.settings.base_mb)
    for label, base, env in (("static", None, {}), ("large base", large, {}),
                             ("copy", None, {"KODEV_SWAP_COPY": "1"})):
        server = KodevServer(context, f"s7-big-{label.replace(' ', '-')}", base=base, env=env)
        _with_blob(server)
        try:
            server.start(timeout=600)
            for index, counted in rounds(context):
                served, stages = server.measure(f"big-{context.uid}-{index}")
                if stages.get("sent_mb", 0.0) < BLOB_MB:  # the blob was linked out: not a large binary
                    raise BenchError(f"the large binary is only {stages.get('sent_mb', 0.0):.1f} MB")
                context.log(f"scenario 7 large binary, {label}, round {index + 1}"
                            f"{'' if counted else ' (warm-up)'}: served after {served:.3f}s, go "
                            f"{stages.get('go', float('nan')):.3f}s, swap {stages.get('swap', float('nan')):.3f}s, "
                            f"restart {stages.get('restart', float('nan')):.3f}s")
                if counted:
                    big.setdefault(label, []).append(_beyond_go(served, stages))
                    handoffs.setdefault(label, []).append(stages.get("swap", float("nan")))
                    big_sizes.append(stages["sent_mb"])
                time.sleep(PAUSE)
        finally:
            server.stop()
        binary = server.module / "cmd" / "server" / "blob.bin"
        binary.unlink(missing_ok=True)

    mount_s, copy_s, floor_s = series
    mount_over = median(pair_differences(mount_s, floor_s))
    copy_over = median(pair_differences(copy_s, floor_s))
    window = median(windows) if windows else float("nan")
    worst = max(windows) if windows else float("nan")
    big_static = median(big.get("static", [])) if big.get("static") else float("nan")
    big_large = median(big.get("large base", [])) if big.get("large base") else float("nan")
    big_copy = median(big.get("copy", [])) if big.get("copy") else float("nan")
    result.tables.append(series_table(series))
    result.tables.append(Table(["derived (medians)", "value"], [
        ["kodev (bind mount) − floor (per round)", millis(mount_over)],
        ["kodev (copy) − floor (per round)", millis(copy_over)],
        [f"refused-connection window during a swap (median of {len(windows)}; worst)",
         f"{millis(window)}; {millis(worst)}"],
        ["size of the large binary's layer (sent to the daemon after the swap)",
         f"{median(big_sizes):.1f} MB" if big_sizes else "—"],
        ["~90 MB binary, static base: edit to serving − go build", millis(big_static)],
        [f"~90 MB binary, {context.settings.base_mb} MB base: edit to serving − go build", millis(big_large)],
        ["~90 MB binary by copy (forced; no target): edit to serving − go build", millis(big_copy)],
        ["kodev's swap stage (hand-off to the supervisor): static / large base / copy",
         " / ".join(millis(median(handoffs[k])) if handoffs.get(k) else "—"
                    for k in ("static", "large base", "copy"))],
    ]))
    result.targets.append(Target("copy path (forced): kodev − floor ≤ 130 ms (median)", millis(copy_over),
                                 copy_over <= 0.130 if copy_over == copy_over else None))
    result.targets.append(Target("refused connections during a swap ≤ 30 ms (median)", millis(window),
                                 window <= 0.030 if window == window else None))
    ok = big_static == big_static and big_large == big_large
    result.targets.append(Target("a ~90 MB binary swaps in ≤ 150 ms (edit to serving − go build), on a large "
                                 "base too",
                                 f"{millis(big_static)} / {millis(big_large)}",
                                 (big_static <= 0.150 and big_large <= 0.150) if ok else None))
    if not windows:
        raise BenchError("no refused-window rounds ran")
    return result

