"""Scenario 2's contender: kodev's own pipeline behind a glob-based watcher (what skaffold does for ko).

Run in a module directory with a kodev.toml: builds every command given on the command line once, prints
`ready`, then on any change to a `*.go` file rebuilds *all* of them with `Builder.build` (one `go build`
of every command, then an image and a load per command, as `kodev build` does) and prints
`built N SECONDS`. Saves are batched as kodev watch batches them (`saved_batches`), so
only the decision of what to rebuild differs. Ctrl-C (SIGINT) stops it.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    import threading

    from bench.measure import saved_batches
    from kodev.session import Session

    with Session.open(None, None, None) as session:
        plans = session.plan(argv)
        session.builder.build(plans)
        print(f"ready {len(plans)}", flush=True)
        try:
            for _changes in saved_batches(session.config.root, lambda _c, p: p.endswith(".go"), threading.Event()):
                started = time.monotonic()
                built = session.builder.build(plans)
                print(f"built {len(built)} {time.monotonic() - started:.3f}", flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
