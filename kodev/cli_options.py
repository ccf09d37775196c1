"""The options kodev's commands share, and how `--help` shows them: declared once, used by kodev/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter, Parameter  # click itself with typer < 0.24


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


class SeparatedCommand(Command):
    """A command whose arguments after `--` are its program's (`kodev debug [PATH...] -- ARGS`): kept in
    `ctx.meta[AFTER_SEPARATOR]`, so that they never mix with its own variadic PATH arguments."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[AFTER_SEPARATOR] = tuple(args[at + 1:])
            args = args[:at]
        return list(super().parse_args(ctx, args))


AFTER_SEPARATOR = "kodev.after_separator"


def _args(command: TyperCommand, ctx: Context) -> list[Parameter]:
    return [p for p in command.get_params(ctx) if p.param_type_name == "argument" and not getattr(p, "hidden", False)]


def _arg_name(param: Parameter) -> str:
    return param.metavar or (param.name or "").upper()


def after_separator(args: list[str] | None) -> tuple[str, ...]:
    """ARGS after `--` (click may hand the separator itself through)."""
    items = list(args or ())
    return tuple(items[1:] if items[:1] == ["--"] else items)


# typer reads these annotations at runtime, with Python 3.9's syntax: hence Optional (noqa: UP045).
Str = Optional[str]  # noqa: UP045
ListOption = Optional[list[str]]  # noqa: UP045
PathOption = Optional[Path]  # noqa: UP045

ConfigOption = Annotated[PathOption, typer.Option(
    "--config", "-c", metavar="FILE", help="kodev.toml to use (default: the nearest one, up to the module root).",
    show_default=False)]
GoOption = Annotated[Str, typer.Option(
    "--go", metavar="PATH", help="The go command to use (default: KODEV_GO, else `go` on PATH).", show_default=False)]
PlatformOption = Annotated[Str, typer.Option(
    "--platform", metavar="OS/ARCH", help="Target OS/ARCH[/VARIANT] (default: the config's, else the daemon's).",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Write events as JSON lines on stdout (schema kodev.events/1, see the README) instead of text.")]

# `kodev run`'s container settings, as `docker run` names them.
NameOption = Annotated[Str, typer.Option("--name", metavar="NAME", show_default=False,
                                         help="Container name (default: the command's name).")]
EnvOption = Annotated[ListOption, typer.Option("--env", "-e", metavar="KEY=VALUE", show_default=False,
                                               help="Environment variable for the container (repeatable).")]
EnvFileOption = Annotated[PathOption, typer.Option(
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

# `kodev run -w`: the dev proxy (kodev.toml's `proxy`, `upstream`, `ready`).
ProxyOption = Annotated[Str, typer.Option(
    "--proxy", metavar="ADDR", show_default=False,
    help="With --watch: a dev proxy listens here (HOST:PORT or a port): requests wait out rebuilds, pages "
         "reload when the new code serves.")]
UpstreamOption = Annotated[Str, typer.Option(
    "--upstream", metavar="ADDR", show_default=False, help="Where the app itself listens (with --proxy).")]
ReadyOption = Annotated[Str, typer.Option(
    "--ready", metavar="PATH", show_default=False,
    help="With --proxy: the app serves once this path answers 2xx (default: once its port accepts).")]

# `kodev watch -f` and `kodev resolve`: the compose project.
ProjectNameOption = Annotated[Str, typer.Option(
    "--project-name", "-p", metavar="NAME", show_default=False,
    help="Compose project name (default: Compose's, from the directory name).")]

# `kodev build --push`: a registry, and image names as ko makes them.
PushOption = Annotated[Str, typer.Option(
    "--push", metavar="REPO", show_default=False,
    help="Push to this registry repository instead of loading into the daemon (ko's KO_DOCKER_REPO, e.g. "
         "127.0.0.1:5000/team); prints REPO/NAME@sha256:... per command.")]
BareOption = Annotated[bool, typer.Option("--bare", help="With --push: the image is REPO itself (ko's --bare).")]
BaseImportPathsOption = Annotated[bool, typer.Option(
    "--base-import-paths", "-B", help="With --push: REPO/<last element of the import path> (ko's -B).")]
PreserveImportPathsOption = Annotated[bool, typer.Option(
    "--preserve-import-paths", "-P", help="With --push: REPO/<the whole import path> (ko's -P).")]
TagsOption = Annotated[ListOption, typer.Option(
    "--tags", "-t", metavar="TAG[,TAG]", show_default=False,
    help="With --push: tags to push (repeatable or comma-separated; default: latest).")]
InsecureOption = Annotated[ListOption, typer.Option(
    "--insecure-registry", metavar="HOST[:PORT]", show_default=False,
    help="With --push: reach this registry over plain HTTP (loopback registries always are).")]
LocalOption = Annotated[bool, typer.Option(
    "--local", "-L", help="Load into the daemon even when KO_DOCKER_REPO or [publish] repo names a registry "
                          "(ko's -L).")]
OutOption = Annotated[PathOption, typer.Option(
    "--out", metavar="DIR", show_default=False,
    help="With -f on Kubernetes YAML and --push: write the resolved manifests of each round's images here.")]

# `kodev build`: where else the images go, and the bases.
PullOption = Annotated[bool, typer.Option("--pull", help="Pull tagged base images again, even if the daemon has "
                                                         "them.")]
TarballOption = Annotated[PathOption, typer.Option(
    "--tarball", metavar="FILE", show_default=False,
    help="Also write the images into FILE, a `docker save` archive (`docker load -i FILE` elsewhere).")]
