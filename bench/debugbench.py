"""Scenario 10: `kodev debug` (issue 21) — save to the debugged process serving again, against `kodev watch`.

Both contenders run on their own copies of examples/hello, alternating, with the same one-line edit of
`cmd/server/main.go`, timed from the write until the page serves the token. Under `kodev debug` an IDE-like
client stays connected to the service's Delve for the whole run (a second Delve client, as an IDE is), so a
save costs what it costs a user debugging: a debug build (`-gcflags=all=-N -l`, DWARF kept, no -trimpath),
the binary put in place and Delve's restart of the process. `kodev watch` runs with its defaults (a
stripped build, swapped by the supervisor). Delve is built by kodev (with the `go` on PATH) before the
first round, outside the measurement.
"""

from __future__ import annotations

import time

from bench.contenders import PAUSE, KodevServer, median_of, rounds, wait_event
from bench.context import Context
from bench.measure import BenchError, Series, free_port, median, pair_differences
from bench.results import ScenarioResult, Table, millis, series_table


def debug_sessions(context: Context) -> ScenarioResult:
    """kodev debug: save → the debugged process serving, against kodev watch"""
    from kodev.debug.rpc import DelveClient, DelveRPCError

    result = ScenarioResult(
        10, "kodev debug: save → the debugged process serving, against kodev watch",
        "The same one-line edit of `cmd/server/main.go` as scenario 1, timed from the write until the page "
        "serves the token, alternating between `kodev debug` (the service under Delve, an IDE-like JSON-RPC "
        "client attached throughout and never reconnected) and `kodev watch` with its defaults, each on its "
        "own copy of examples/hello. The debug build keeps DWARF and turns optimizations off; the hand-off "
        "under Delve is the binary put in place and Delve's restart of the process (halt, `RPCServer.Restart`, "
        "continue), where `kodev watch` sends its supervisor a restart request. kodev's own breakdown of the "
        "rounds says where the difference goes.")
    delve_port = free_port()
    debugged = KodevServer(context, "s10-debug", command="debug", service_lines=f"delve = {delve_port}\n")
    watched = KodevServer(context, "s10-watch")
    series = [Series("kodev debug (IDE attached)"), Series("kodev watch")]
    breakdowns: tuple[list[dict[str, float]], list[dict[str, float]]] = ([], [])
    ide: DelveClient | None = None
    try:
        debugged.start(timeout=600)  # the first start may build Delve (about a minute)
        assert debugged.process is not None
        _, listening = wait_event(debugged.process, "debugger.listening", timeout=60)
        ide = DelveClient.connect(str(listening["address"]))
        ide.call("GetVersion", {})
        watched.start()
        for index, counted in rounds(context):
            token = f"{context.uid}-s10-{index}"
            d, d_stages = debugged.measure(f"debug-{token}")
            time.sleep(PAUSE)
            w, w_stages = watched.measure(f"watch-{token}")
            time.sleep(PAUSE)
            context.log(f"scenario 10 round {index + 1}{'' if counted else ' (warm-up)'}: debug {d:.3f}s "
                        f"(go {d_stages.get('go', float('nan')):.3f}s), watch {w:.3f}s "
                        f"(go {w_stages.get('go', float('nan')):.3f}s)")
            if counted:
                for one, value in zip(series, (d, w), strict=True):
                    one.values.append(value)
                breakdowns[0].append(d_stages)
                breakdowns[1].append(w_stages)
        # The IDE's connection outlived every save: it still answers, on the same socket.
        ide.call("GetVersion", {})
    except DelveRPCError as exc:
        raise BenchError(f"the IDE-like client lost Delve: {exc}") from None
    finally:
        if ide is not None:
            ide.close()
        debugged.stop()
        watched.stop()

    debug_s, watch_s = series
    over = median(pair_differences(debug_s, watch_s))
    result.tables.append(series_table(series))
    result.tables.append(Table(["derived (medians)", "kodev debug", "kodev watch"], [
        ["kodev's go build", millis(median_of(breakdowns[0], "go")), millis(median_of(breakdowns[1], "go"))],
        ["hand-off (swap; under Delve: binary in place + Delve's restart)",
         millis(median_of(breakdowns[0], "swap")), millis(median_of(breakdowns[1], "swap"))],
    ]))
    result.tables.append(Table(["derived (medians)", "value"], [
        ["kodev debug − kodev watch, save to serving (per round)", millis(over)],
    ]))
    result.notes.append("No target: issue 21 asks for the row, not a bound. The IDE-like client's connection "
                        "was the same one from the first round to the last.")
    return result
