"""Stage 'talk': the typer commands. Thin: parse, connect the stages, report through `UI`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional, TypeVar

import typer
from typer.core import TyperCommand

from kodev import __version__

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter, Parameter  # click itself with typer < 0.24

    from kodev.network import Origin
    from kodev.services import ContainerSpec
    from kodev.session import Session
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


class Command(TyperCommand):
    """Arguments shown by their metavar as written (`PATH...`), not as `{PATH...}...` with a `<list[str]>` type."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [*([self.options_metavar] if self.options_metavar else []), *(_arg_name(p) for p in _args(self, ctx))]

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments = [(_arg_name(p), getattr(p, "help", None) or "") for p in _args(self, ctx)]
        options = [record for p in self.get_params(ctx)
                   if p.param_type_name == "option" and (record := p.get_help_record(ctx))]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _args(command: TyperCommand, ctx: Context) -> list[Parameter]:
    return [p for p in command.get_params(ctx) if p.param_type_name == "argument" and not getattr(p, "hidden", False)]


def _arg_name(param: Parameter) -> str:
    return param.metavar or (param.name or "").upper()

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
    config: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--config", "-c", metavar="FILE", show_default=False,
        help="kodev.toml to use, for any command (`kodev -c FILE watch`); a command's own --config wins.")] = None,
) -> None:
    """`config` is read back by each command from its parent context (`_config`), not kept in a global."""
    import os

    State.debug = debug or os.environ.get("KODEV_DEBUG", "") not in ("", "0")
    if State.debug:
        from kodev.ui import enable_debug_log

        enable_debug_log()


def _config(ctx: typer.Context, own: Path | None) -> Path | None:
    """The command's own --config, else the one given before the command (`kodev --config FILE watch`)."""
    if own is not None:
        return own
    parent = ctx.parent
    found = parent.params.get("config") if parent is not None else None
    return found if isinstance(found, Path) else None


BROKEN_PIPE_EXIT = 141  # what a shell reports for a tool that SIGPIPE ended (128 + 13), e.g. `yes | head -1`


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end was closed (poll reports an error on the write end)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _quiet_exit() -> NoReturn:
    """stdout's reader went away (`kodev resolve -f compose.yaml | head -c0`): exit quietly, as Unix tools do.

    stdout is pointed at /dev/null first, as Python's docs advise for SIGPIPE: whatever is flushed later,
    at interpreter exit too, goes nowhere instead of raising BrokenPipeError again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    raise typer.Exit(BROKEN_PIPE_EXIT)


def make_ui(command: str, json: bool) -> UI:
    """The output of this invocation: text for people, or JSON events (`--json`)."""
    if json:
        from kodev.jsonui import JsonUI

        try:
            return JsonUI(command, debug=State.debug)  # writes the `started` event
        except BrokenPipeError:
            if _stdout_reader_gone():
                _quiet_exit()
            raise
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
    except KeyboardInterrupt:
        # Before a loop owned anything (the loops clean up and return on their own): click would say
        # "Aborted!" and exit 1; a Ctrl-C is not an error.
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
            _quiet_exit()  # kodev's output has no reader any more: nothing to report, nowhere to say it
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


@app.command(cls=Command)
def build(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", help="Commands to build: ./cmd/server, example.com/m/cmd/server or ko://example.com/m/cmd/server.",
        show_default=False)],
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
    pull: Annotated[bool, typer.Option("--pull", help="Pull tagged base images again, even if the daemon has them.")
                    ] = False,
    tarball: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--tarball", metavar="FILE", show_default=False,
        help="Also write the images into FILE, a `docker save` archive (`docker load -i FILE` elsewhere).")] = None,
    json: JsonOption = False,
) -> None:
    """Build each command into an image, load it into the Docker daemon, print its reference."""
    from kodev.session import Session

    ui = make_ui("build", json)

    def run() -> None:
        with Session.open(_config(ctx, config), go, platform, debug=State.debug, ui=ui, pull=pull,
                          tarball=tarball) as session:
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
SwapOption = Annotated[Optional[bool], typer.Option(  # noqa: UP045
    "--swap/--no-swap", show_default=False,
    help="While watching, swap a new binary into the running container when only the binary changed (kodev's "
         "supervisor restarts the app); --no-swap recreates it every time. Default: on, unless KODEV_SWAP=0.")]


@app.command(cls=Command)
def run(
    ctx: typer.Context,
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
    swap: SwapOption = None,
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
    json: JsonOption = False,
) -> None:
    """Build a command, run it in a container in the foreground; with --watch, keep it up to date."""
    from kodev.config import ServiceConfig
    from kodev.network import Origin
    from kodev.services import container_spec
    from kodev.session import Session

    ui = make_ui("run", json)

    def start() -> int:
        with Session.open(_config(ctx, config), go, platform, debug=State.debug, ui=ui) as session:
            plan = session.plan([path])
            if len(plan) != 1:
                from kodev.errors import GoError

                raise GoError(f"{path}: names {len(plan)} commands; kodev run runs one.")
            target_plan = plan[0]
            service = ServiceConfig(
                name=name or target_plan.container_name, command=path, args=_after_separator(args),
                env=tuple(env or ()),
                env_file=str(env_file) if env_file else None, ports=tuple(publish or ()), network=network,
                volumes=tuple(volume or ()), user=user, stop_timeout=stop_timeout)
            spec = container_spec(service, session.cwd, "kodev run", remove_on_exit=rm)
            _check_network(session, [(spec, Origin("kodev run", "`--network host` (and no -p)"))])
            from kodev.session import CommandServices
            from kodev.watch import DevLoop

            if watch:
                return DevLoop(session, [CommandServices(target_plan, (spec,))], prefix_logs=False,
                               swap=_swapping(swap)).run()
            from kodev.run import run_once

            return run_once(session, target_plan, spec)

    finish(ui, start)


@app.command("watch", cls=Command)
def watch_command(
    ctx: typer.Context,
    paths: Annotated[ListOption, typer.Argument(
        metavar="[PATH...]", show_default=False,
        help="Commands to watch (default: the services and commands in kodev.toml).")] = None,
    compose_files: Annotated[Optional[list[Path]], typer.Option(  # noqa: UP045
        "--file", "-f", metavar="FILE", show_default=False,
        help="A compose file (repeatable): run the project through Compose, keeping its ko:// services fresh.")
    ] = None,
    project_name: Annotated[Str, typer.Option(
        "--project-name", "-p", metavar="NAME", show_default=False,
        help="Compose project name (default: Compose's, from the directory name).")] = None,
    take_down: Annotated[bool, typer.Option(
        "--down", help="On Ctrl-C take the compose project down (containers removed, volumes kept) instead of "
                       "stopping it.")] = False,
    swap: SwapOption = None,
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
        with Session.open(_config(ctx, config), go, platform, debug=State.debug, ui=ui) as session:
            files = compose_files or ([session.config.root / f for f in session.config.compose] if not paths else [])
            if files:
                return _watch_compose(session, files, project_name, take_down, _swapping(swap))
            targets = session.watch_targets(paths or [])
            _check_network(session, [(spec, _origin(session, spec)) for target in targets for spec in target.specs])
            return DevLoop(session, targets, prefix_logs=True, watch_paths=list(paths or []),
                           swap=_swapping(swap)).run()

    finish(ui, start)


def _swapping(flag: bool | None) -> bool:
    """--swap/--no-swap, else KODEV_SWAP (0 turns it off), else on."""
    import os

    return flag if flag is not None else os.environ.get("KODEV_SWAP", "1") not in ("0", "false", "no")


def _watch_compose(session: Session, files: list[Path], project_name: str | None, take_down: bool,
                   swap: bool) -> int:
    from kodev.compose import find_compose, load_with_own_refs
    from kodev.compose.build import watch_commands
    from kodev.deliver.compose import ComposeStack
    from kodev.deliver.compose_swap import ComposeSwap
    from kodev.deliver.supervision import Supervision
    from kodev.errors import ConfigError
    from kodev.watch import DevLoop

    cli = find_compose()
    project = load_with_own_refs(session, cli, files, project_name)
    if not project.kodev_services:
        raise ConfigError(f"no service of {', '.join(str(f) for f in project.files)} runs a kodev command: give one "
                          "an image ko://<import path> or ko://./cmd/NAME (relative to the compose file).")
    commands = watch_commands(session, project)
    client = session.daemon.client
    swapping = ComposeSwap(Supervision(session.go, client), client,
                           {s: c.plan.command.app_name for c in commands for s in c.compose}) if swap else None
    stack = ComposeStack(cli, project, {s: c.plan.ref for c in commands for s in c.compose}, client,
                         take_down=take_down, swap=swapping)
    return DevLoop(session, commands, prefix_logs=True, stack=stack, swap=swap).run()


@app.command("resolve")
def resolve_command(
    ctx: typer.Context,
    file: Annotated[list[Path], typer.Option(
        "--file", "-f", metavar="FILE", show_default=False,
        help="Compose file (repeatable, merged in order as Compose merges them).")],
    project_name: Annotated[Str, typer.Option(
        "--project-name", "-p", metavar="NAME", show_default=False,
        help="Compose project name (default: Compose's, from the directory name).")] = None,
    config: ConfigOption = None,
    go: GoOption = None,
    platform: PlatformOption = None,
) -> None:
    """Build the ko:// services of a compose project; print the project with their image references."""
    from kodev.compose import find_compose, resolve
    from kodev.session import Session

    def run() -> None:
        cli = find_compose()
        with Session.open(_config(ctx, config), go, platform, debug=State.debug) as session:
            session.ui.result(resolve(session, cli, file, project_name).rstrip("\n"))

    guarded(run)


def _check_network(session: Session, specs: Sequence[tuple[ContainerSpec, Origin]]) -> None:
    """Before anything is built: a bridge-less daemon cannot publish ports (error) nor reach a default network."""
    from kodev.network import check

    for warning in check(session.daemon.client, specs):
        session.ui.warn(warning)


def _origin(session: Session, spec: ContainerSpec) -> Origin:
    from kodev.network import Origin

    if spec.service in session.config.services:
        return Origin(f"{session.config.describe()}: services.{spec.service}",
                      'network = "host" in that table (and no ports)')
    return Origin(f"kodev watch {spec.command}", 'a [services.NAME] table in kodev.toml with network = "host"')


def main() -> None:
    from kodev.signals import own_sigint

    try:
        own_sigint()
        app()
    except KeyboardInterrupt:
        sys.exit(130)
