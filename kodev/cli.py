"""Stage 'talk': the typer commands. Thin: parse, connect the stages, report through `UI`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer

from kodev import __version__

app = typer.Typer(
    name="kodev",
    help="The inner loop for Go services built the ko way: save a file, the container runs the new code.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

ConfigOption = Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer needs Optional on 3.9 syntax
    "--config", "-c", help="kodev.toml to use (default: the nearest one, up to the module root).",
    show_default=False)]
GoOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--go", help="The go command to use (default: KODEV_GO, else `go` on PATH).", show_default=False)]
PlatformOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--platform", help="Target OS/ARCH[/VARIANT] (default: the config's, else the daemon's).",
    show_default=False)]


class State:
    debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kodev {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
) -> None:
    State.debug = debug


def guarded(action: Callable[[], T]) -> T:
    """Run `action`; a KodevError becomes one paragraph on stderr and exit code 1, never a traceback."""
    from kodev.errors import KodevError
    from kodev.ui import UI

    try:
        return action()
    except KodevError as exc:
        UI(debug=State.debug).error(exc)
        raise typer.Exit(1) from None


@app.command()
def build(
    paths: Annotated[list[str], typer.Argument(
        help="Commands to build: ./cmd/server, example.com/m/cmd/server or ko://example.com/m/cmd/server.",
        show_default=False)],
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
) -> None:
    """Build each command into an image, load it into the Docker daemon, print its reference."""
    from kodev.session import Session

    def run() -> None:
        with Session.open(config, go, platform, debug=State.debug) as session:
            for built in session.build_paths(paths):
                session.ui.result(built.plan.ref)

    guarded(run)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
