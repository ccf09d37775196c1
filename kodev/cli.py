"""Stage 'talk': the typer commands. Thin: parse, connect the stages, report through `UI`.

kodev's environment variables are read once, by the callback that runs before every command
(`EnvSettings`, kept in the click context's `obj`), and passed on from there. The shared options live in
kodev/cli_options.py; how a command's output starts and ends (errors, exit codes) in kodev/cli_guard.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from kodev import __version__
from kodev import cli_options as opt
from kodev.cli_guard import finish, guarded, make_ui
from kodev.cli_options import AFTER_SEPARATOR, Command, SeparatedCommand, Str, after_separator

if TYPE_CHECKING:
    from kodev.publish.registry import PushSettings
    from kodev.session import Session
    from kodev.settings import EnvSettings
    from kodev.ui import UI

app = typer.Typer(
    name="kodev",
    help="The inner loop for Go services built the ko way: save a file, the container runs the new code.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold docker syntax like [HOST_IP:]PORT, not markup
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kodev {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show debug messages and tracebacks of unexpected errors "
                                                          "(also KODEV_DEBUG=1).")] = False,
    config: Annotated[opt.PathOption, typer.Option(
        "--config", "-c", metavar="FILE", show_default=False,
        help="kodev.toml to use, for any command (`kodev -c FILE watch`); a command's own --config wins.")] = None,
) -> None:
    """Reads kodev's environment once, for the command that follows (its context inherits `obj`).

    `config` is read back by each command from its parent context (`_config`), not kept in a global."""
    import dataclasses

    from kodev.settings import EnvSettings

    settings = EnvSettings.from_env(os.environ)
    ctx.obj = dataclasses.replace(settings, debug=settings.debug or debug)
    if ctx.obj.debug:
        from kodev.ui import enable_debug_log

        enable_debug_log()


def _settings(ctx: typer.Context) -> EnvSettings:
    """What `main_options` read (it runs before every command)."""

    from kodev.settings import EnvSettings

    found = ctx.obj
    return found if isinstance(found, EnvSettings) else EnvSettings.from_env(os.environ)


# The tag a watch loop's containers run from, besides `latest` (which `kodev build` moves meanwhile).
WATCH_TAG = "watch"


def _config(ctx: typer.Context, own: Path | None) -> Path | None:
    """The command's own --config, else the one given before the command (`kodev --config FILE watch`)."""
    if own is not None:
        return own
    parent = ctx.parent
    found = parent.params.get("config") if parent is not None else None
    return Path(found) if isinstance(found, (str, Path)) else None  # typer < 0.29 leaves it a str here


@contextmanager
def _session(ctx: typer.Context, config: Path | None, go: str | None, platform: str | None,
             ui: UI | None = None, pull: bool = False, tarball: Path | None = None,
             run_tag: str | None = None, push: PushSettings | None = None) -> Iterator[Session]:
    """The session of a command, from its --config, --go and --platform."""
    from kodev.session import Session

    with Session.open(_config(ctx, config), go, platform, ui=ui, pull=pull, tarball=tarball,
                      settings=_settings(ctx), run_tag=run_tag, push=push) as session:
        yield session


def _in_session(ctx: typer.Context, command: str, json: bool, config: Path | None, go: str | None,
                platform: str | None, body: Callable[[Session], int | None], pull: bool = False,
                tarball: Path | None = None, run_tag: str | None = None,
                push: Callable[[], PushSettings | None] = lambda: None) -> NoReturn:
    """Run `body` in the command's session, with its output (text, or events with --json), and exit with the
    code it returns; errors are said as `guarded` says them. `push`: where --push sends images (checked
    inside, so that a bad flag is said as any error is)."""
    debug = _settings(ctx).debug
    ui = make_ui(command, json, debug)

    def start() -> int | None:
        with _session(ctx, config, go, platform, ui, pull=pull, tarball=tarball, run_tag=run_tag,
                      push=push()) as session:
            return body(session)

    finish(ui, start, debug)


@app.command(cls=Command)
def build(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", help="Commands to build: ./cmd/server, example.com/m/cmd/server or ko://example.com/m/cmd/server.",
        show_default=False)],
    config: opt.ConfigOption = None,
    go: opt.GoOption = None,
    platform: opt.PlatformOption = None,
    pull: opt.PullOption = False,
    tarball: opt.TarballOption = None,
    push: opt.PushOption = None,
    bare: opt.BareOption = False,
    base_import_paths: opt.BaseImportPathsOption = False,
    preserve_import_paths: opt.PreserveImportPathsOption = False,
    tags: opt.TagsOption = None,
    insecure: opt.InsecureOption = None,
    local: opt.LocalOption = False,
    json: opt.JsonOption = False,
) -> None:
    """Build each command into an image, load it into the Docker daemon (or push it), print its reference."""
    pushed: list[PushSettings] = []

    def build_each(session: Session) -> None:
        for built in session.build_paths(paths):
            session.ui.result(built.published.ref if pushed else built.plan.ref)

    def pushing() -> PushSettings | None:
        from kodev.cli_watch import build_repo, push_flags

        repo = push or (None if local else build_repo(_config(ctx, config)))
        settings = push_flags(repo, bare, base_import_paths, preserve_import_paths, tags or [], insecure or [])
        pushed.extend([settings] if settings else [])
        return settings

    _in_session(ctx, "build", json, config, go, platform, build_each, pull=pull, tarball=tarball, push=pushing)


@app.command(cls=Command)
def run(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="PATH", show_default=False,
                                        help="The command to run: ./cmd/server or its import path.")],
    args: Annotated[opt.ListOption, typer.Argument(metavar="[-- ARGS...]", show_default=False,
                                               help="Arguments for the command.")] = None,
    name: opt.NameOption = None,
    env: opt.EnvOption = None,
    env_file: opt.EnvFileOption = None,
    publish: opt.PublishOption = None,
    network: opt.NetworkOption = None,
    volume: opt.VolumeOption = None,
    user: opt.UserOption = None,
    stop_timeout: opt.StopTimeoutOption = 10,
    rm: opt.RmOption = True,
    watch: opt.WatchOption = False,
    swap: opt.SwapOption = None,
    proxy: opt.ProxyOption = None,
    upstream: opt.UpstreamOption = None,
    ready: opt.ReadyOption = None,
    config: opt.ConfigOption = None,
    go: opt.GoOption = None,
    platform: opt.PlatformOption = None,
    json: opt.JsonOption = False,
) -> None:
    """Build a command, run it in a container in the foreground; with --watch, keep it up to date."""
    from kodev.config import ServiceConfig

    service = ServiceConfig(
        name=name or "", command=path, args=after_separator(args), env=tuple(env or ()),
        env_file=str(env_file) if env_file else None, ports=tuple(publish or ()), network=network,
        volumes=tuple(volume or ()), user=user, stop_timeout=stop_timeout)
    swapping = _swapping(swap, _settings(ctx))

    def run_in(session: Session) -> int:
        import dataclasses

        from kodev.cli_watch import proxy_flags, run_service

        proxied = dataclasses.replace(service, proxy=proxy_flags(proxy, upstream, ready, watch))
        return run_service(session, proxied, remove_on_exit=rm, watch=watch, swap=swapping)

    _in_session(ctx, "run", json, config, go, platform, run_in, run_tag=WATCH_TAG if watch else None)


@app.command("watch", cls=Command)
def watch_command(
    ctx: typer.Context,
    paths: Annotated[opt.ListOption, typer.Argument(
        metavar="[PATH...]", show_default=False,
        help="Commands to watch (default: the services and commands in kodev.toml); with -k, the Kubernetes "
             "manifests to apply (files or directories; default: kodev.toml's [kubernetes] manifests).")] = None,
    kubernetes: Annotated[bool, typer.Option(
        "--kubernetes", "-k", help="Apply the manifests' objects to a cluster and roll out each one whose ko:// "
                                   "images a save changed (images pushed with --push).")] = False,
    context: Annotated[Str, typer.Option(
        "--context", metavar="NAME", show_default=False, help="With -k: the kubeconfig context (default: current).")
    ] = None,
    namespace: Annotated[Str, typer.Option(
        "--namespace", "-n", metavar="NAME", show_default=False,
        help="With -k: the namespace of objects that name none (default: the context's, else default).")] = None,
    compose_files: Annotated[Optional[list[Path]], typer.Option(  # noqa: UP045
        "--file", "-f", metavar="FILE", show_default=False,
        help="A compose file (repeatable): run the project through Compose, keeping its ko:// services fresh.")
    ] = None,
    project_name: opt.ProjectNameOption = None,
    take_down: Annotated[bool, typer.Option(
        "--down", help="On Ctrl-C take the compose project down (containers removed, volumes kept) instead of "
                       "stopping it; with -k, delete the objects kodev applied (default: left running).")] = False,
    swap: opt.SwapOption = None,
    push: opt.PushOption = None,
    out: opt.OutOption = None,
    config: opt.ConfigOption = None,
    go: opt.GoOption = None,
    platform: opt.PlatformOption = None,
    json: opt.JsonOption = False,
) -> None:
    """Watch the module; rebuild only what a change affects and recreate the containers running it."""
    from kodev.cli_watch import watch_push

    swapping = _swapping(swap, _settings(ctx))
    if kubernetes:
        from kodev.cli_kube import KubeFlags, kube_push, watch_kube

        flags = KubeFlags(context, namespace, take_down)
        _in_session(ctx, "watch", json, config, go, platform, lambda s: watch_kube(s, paths or [], flags, swapping),
                    push=lambda: kube_push(push, _config(ctx, config)))

    def watch_in(session: Session) -> int:
        from kodev.cli_watch import watch_loop

        return watch_loop(session, paths or [], compose_files or [], project_name, take_down, swapping)

    _in_session(ctx, "watch", json, config, go, platform, watch_in, run_tag=WATCH_TAG,
                push=lambda: watch_push(push, compose_files or [], out, _config(ctx, config)))


@app.command("debug", cls=SeparatedCommand)
def debug_command(
    ctx: typer.Context,
    paths: Annotated[opt.ListOption, typer.Argument(
        metavar="[PATH...] [-- ARGS...]", show_default=False,
        help="Commands to debug (default: the services and commands in kodev.toml); ARGS after -- go to the "
             "commands named here.")] = None,
    dlv: Annotated[Str, typer.Option(
        "--dlv", metavar="PATH", show_default=False,
        help="A static dlv for the containers' platform (also KODEV_DLV); default: kodev builds Delve with your "
             "go, once per Go version.")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Each new process waits at its start until a debugger continues it.")] = False,
    config: opt.ConfigOption = None,
    go: opt.GoOption = None,
    platform: opt.PlatformOption = None,
    json: opt.JsonOption = False,
) -> None:
    """Watch like `kodev watch`, every service under Delve: your debugger stays attached across saves."""
    args = ctx.meta.get(AFTER_SEPARATOR, ())

    def debug_in(session: Session) -> int:
        from kodev.cli_watch import debug_loop

        return debug_loop(session, paths or [], args, dlv, wait)

    _in_session(ctx, "debug", json, config, go, platform, debug_in, run_tag=WATCH_TAG)


def _swapping(flag: bool | None, settings: EnvSettings) -> bool:
    """--swap/--no-swap, else KODEV_SWAP (0 turns it off), else on."""
    return flag if flag is not None else settings.swap


@app.command("resolve")
def resolve_command(
    ctx: typer.Context,
    file: Annotated[list[Path], typer.Option(
        "--file", "-f", metavar="FILE", show_default=False,
        help="Kubernetes YAML (a file, or a directory of them) whose ko:// references to resolve; or Compose "
             "files (repeatable, merged in order as Compose merges them).")],
    project_name: opt.ProjectNameOption = None,
    push: opt.PushOption = None,
    bare: opt.BareOption = False,
    base_import_paths: opt.BaseImportPathsOption = False,
    preserve_import_paths: opt.PreserveImportPathsOption = False,
    tags: opt.TagsOption = None,
    insecure: opt.InsecureOption = None,
    config: opt.ConfigOption = None,
    go: opt.GoOption = None,
    platform: opt.PlatformOption = None,
) -> None:
    """Build every ko:// reference of Kubernetes YAML, push it, print the YAML with digest references (as
    `ko resolve`); or build a compose project's ko:// services and print the project."""
    from kodev.cli_watch import default_repo, is_compose, push_flags, resolve_manifests

    def run() -> None:
        if is_compose(file):
            from kodev.compose import find_compose
            from kodev.compose_build import resolve

            cli = find_compose()
            with _session(ctx, config, go, platform) as session:
                session.ui.result(resolve(session, cli, file, project_name).rstrip("\n"))
            return
        pushing = push_flags(push or default_repo(_config(ctx, config)), bare, base_import_paths,
                             preserve_import_paths, tags or [], insecure or [], needed=True)
        with _session(ctx, config, go, platform, push=pushing) as session:
            session.ui.result(resolve_manifests(session, file))

    guarded(run, _settings(ctx).debug)


def main() -> None:
    from kodev.signals import own_sigint

    try:
        own_sigint()
        app()
    except KeyboardInterrupt:
        sys.exit(130)
