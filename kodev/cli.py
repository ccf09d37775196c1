"""Stage 'talk': the typer commands. Thin: parse, connect the stages, report through `UI`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional, TypeVar

import typer

from kodev import __version__

if TYPE_CHECKING:
    from kodev.ui import UI

app = typer.Typer(
    name="kodev",
    help="The inner loop for Go services built the ko way: save a file, the container runs the new code.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold docker syntax like [HOST_IP:]PORT, not markup
)

T = TypeVar("T")

ConfigOption = Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer needs Optional on 3.9 syntax
    "--config", "-c", metavar="FILE", help="kodev.toml to use (default: the nearest one, up to the module root).",
    show_default=False)]
GoOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--go", metavar="PATH", help="The go command to use (default: KODEV_GO, else `go` on PATH).", show_default=False)]
PlatformOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--platform", metavar="OS/ARCH", help="Target OS/ARCH[/VARIANT] (default: the config's, else the daemon's).",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Write events as JSON lines on stdout (schema kodev.events/1, see the README) instead of text.")]


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
    debug: Annotated[bool, typer.Option("--debug", help="Show debug messages and tracebacks of unexpected errors "
                                                          "(also KODEV_DEBUG=1).")] = False,
) -> None:
    import os

    State.debug = debug or os.environ.get("KODEV_DEBUG", "") not in ("", "0")
    if State.debug:
        from kodev.ui import enable_debug_log

        enable_debug_log()


def make_ui(command: str, json: bool) -> UI:
    """The output of this invocation: text for people, or JSON events (`--json`)."""
    if json:
        from kodev.jsonui import JsonUI

        return JsonUI(command, debug=State.debug)
    from kodev.ui import UI

    return UI(debug=State.debug)


def guarded(action: Callable[[], T], ui: UI | None = None) -> T:
    """Run `action`; a KodevError becomes one paragraph on stderr and exit code 1, never a traceback."""
    from kodev.errors import KodevError
    from kodev.ui import UI

    ui = ui or UI(debug=State.debug)
    try:
        return action()
    except KodevError as exc:
        ui.error(exc, fatal=True)
        raise typer.Exit(1) from None
    except (KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:
        if State.debug:
            raise
        # A bug or a failure kodev did not foresee: one paragraph; --debug shows the traceback.
        ui.error(KodevError(f"unexpected {type(exc).__name__}: {exc}. Run again with --debug to see the "
                            "traceback, and please report it."), fatal=True)
        raise typer.Exit(1) from None


def finish(ui: UI, action: Callable[[], int | None]) -> NoReturn:
    """Run `action` guarded and exit with its code; the UI closes first (the `exit` event, the status line)."""
    code = 1
    try:
        code = guarded(action, ui) or 0
    except typer.Exit as exit_:
        code = exit_.exit_code
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        ui.close(code)
    raise typer.Exit(code)


@app.command()
def build(
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", help="Commands to build: ./cmd/server, example.com/m/cmd/server or ko://example.com/m/cmd/server.",
        show_default=False)],
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
    pull: Annotated[bool, typer.Option("--pull", help="Pull tagged base images again, even if the daemon has them.")
                    ] = False,
    json: JsonOption = False,
) -> None:
    """Build each command into an image, load it into the Docker daemon, print its reference."""
    from kodev.session import Session

    ui = make_ui("build", json)

    def run() -> None:
        with Session.open(config, go, platform, debug=State.debug, ui=ui, pull=pull) as session:
            for built in session.build_paths(paths):
                session.ui.result(built.plan.ref)

    finish(ui, run)


ListOption = Optional[list[str]]  # noqa: UP045


def _after_separator(args: list[str] | None) -> tuple[str, ...]:
    """ARGS after `--` (click may hand the separator itself through)."""
    items = list(args or ())
    return tuple(items[1:] if items[:1] == ["--"] else items)


Str = Optional[str]  # noqa: UP045 - typer reads these annotations at runtime
NameOption = Annotated[Str, typer.Option("--name", metavar="NAME", show_default=False,
                                         help="Container name (default: the command's name).")]
EnvOption = Annotated[ListOption, typer.Option("--env", "-e", metavar="KEY=VALUE", show_default=False,
                                               help="Environment variable for the container (repeatable).")]
EnvFileOption = Annotated[Optional[Path], typer.Option(  # noqa: UP045
    "--env-file", metavar="FILE", show_default=False, help="File of KEY=VALUE lines for the container.")]
PublishOption = Annotated[ListOption, typer.Option(
    "--publish", "-p", metavar="[IP:]HOST:CONTAINER[/proto]", show_default=False,
    help="Publish a container port on the host (repeatable).")]
NetworkOption = Annotated[Str, typer.Option("--network", metavar="NETWORK", show_default=False,
                                            help="Network to connect to, e.g. host.")]
VolumeOption = Annotated[ListOption, typer.Option("--volume", "-v", metavar="SRC:DST[:ro]", show_default=False,
                                                  help="Bind mount or named volume (repeatable).")]
UserOption = Annotated[Str, typer.Option("--user", metavar="USER", show_default=False,
                                         help="User to run as (default: the image's).")]
StopTimeoutOption = Annotated[int, typer.Option("--stop-timeout", min=0, metavar="SECONDS",
                                                help="Seconds between SIGTERM and SIGKILL.")]
RmOption = Annotated[bool, typer.Option("--rm/--no-rm", help="Remove the container when it exits.")]
WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="Rebuild and restart on every relevant change.")]


@app.command()
def run(
    path: Annotated[str, typer.Argument(metavar="PATH", show_default=False,
                                        help="The command to run: ./cmd/server or its import path.")],
    args: Annotated[ListOption, typer.Argument(metavar="[-- ARGS...]", show_default=False,
                                               help="Arguments for the command.")] = None,
    name: NameOption = None,
    env: EnvOption = None,
    env_file: EnvFileOption = None,
    publish: PublishOption = None,
    network: NetworkOption = None,
    volume: VolumeOption = None,
    user: UserOption = None,
    stop_timeout: StopTimeoutOption = 10,
    rm: RmOption = True,
    watch: WatchOption = False,
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
    json: JsonOption = False,
) -> None:
    """Build a command, run it in a container in the foreground; with --watch, keep it up to date."""
    from kodev.config import ServiceConfig
    from kodev.services import container_spec
    from kodev.session import Session

    ui = make_ui("run", json)

    def start() -> int:
        with Session.open(config, go, platform, debug=State.debug, ui=ui) as session:
            plan = session.plan([path])
            if len(plan) != 1:
                from kodev.errors import GoError

                raise GoError(f"{path}: names {len(plan)} commands; kodev run runs one.")
            target_plan = plan[0]
            service = ServiceConfig(
                name=name or target_plan.name, command=path, args=_after_separator(args), env=tuple(env or ()),
                env_file=str(env_file) if env_file else None, ports=tuple(publish or ()), network=network,
                volumes=tuple(volume or ()), user=user, stop_timeout=stop_timeout)
            spec = container_spec(service, session.cwd, "kodev run", remove_on_exit=rm)
            from kodev.session import CommandServices
            from kodev.watch import DevLoop

            if watch:
                return DevLoop(session, [CommandServices(target_plan, (spec,))], prefix_logs=False).run()
            from kodev.run import run_once

            return run_once(session, target_plan, spec)

    finish(ui, start)


@app.command("watch")
def watch_command(
    paths: Annotated[ListOption, typer.Argument(
        metavar="[PATH...]", show_default=False,
        help="Commands to watch (default: the services and commands in kodev.toml).")] = None,
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
    json: JsonOption = False,
) -> None:
    """Watch the module; rebuild only what a change affects and recreate the containers running it."""
    from kodev.session import Session
    from kodev.watch import DevLoop

    ui = make_ui("watch", json)

    def start() -> int:
        with Session.open(config, go, platform, debug=State.debug, ui=ui) as session:
            targets = session.watch_targets(paths or [])
            return DevLoop(session, targets, prefix_logs=True, watch_paths=list(paths or [])).run()

    finish(ui, start)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
