"""Scenario 2's contender: kodev's own pipeline behind a glob-based watcher (what skaffold does for ko).

Run in a module directory with a kodev.toml: builds every command given on the command line once, prints
`ready`, then on any change to a `*.go` file rebuilds *all* of them with `Builder.build` (one `go build`
of every command, then an image and a load per command, as `kodev build` does) and prints
`built N SECONDS`. The watcher settings are kodev watch's own (watchfiles' step and debounce), so
only the decision of what to rebuild differs. Ctrl-C (SIGINT) stops it.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    import watchfiles

    from bench.measure import kodev_watch_timing
    from kodev.session import Session

    with Session.open(None, None, None) as session:
        plans = session.plan(argv)
        session.builder.build(plans)
        print(f"ready {len(plans)}", flush=True)
        try:
            debounce, _ = kodev_watch_timing()
            for _changes in watchfiles.watch(session.config.root, watch_filter=lambda _c, p: p.endswith(".go"),
                                             debounce=debounce, step=max(session.config.watch.debounce_ms, 1),
                                             raise_interrupt=False):
                started = time.monotonic()
                built = session.builder.build(plans)
                print(f"built {len(built)} {time.monotonic() - started:.3f}", flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
