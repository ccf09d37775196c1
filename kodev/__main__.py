"""The `kodev` command (and `python -m kodev`): Ctrl-C is handled from the first moment on."""

from __future__ import annotations

import signal

from kodev.signals import exit_quietly


def main() -> None:
    # Before the CLI's imports (typer, rich: most of kodev's start-up time): a Ctrl-C now exits with 130
    # and no traceback. kodev.cli.main then makes SIGINT a KeyboardInterrupt, whatever was inherited.
    signal.signal(signal.SIGINT, exit_quietly)
    from kodev.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
