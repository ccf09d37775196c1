"""What `kodev run`, `kodev watch` and `kodev debug` do once their options are parsed (kodev/cli.py parses).

Each function takes the command's open `Session` and returns its exit code; the stages are imported when
a command needs them (a `kodev --help` imports none)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kodev.config import ServiceConfig
    from kodev.network import Origin
    from kodev.proxy.spec import ProxySpec
    from kodev.publish.registry import PushSettings
    from kodev.services import ContainerSpec
    from kodev.session import Session


def run_service(session: Session, service: ServiceConfig, remove_on_exit: bool, watch: bool, swap: bool) -> int:
    """`kodev run`: the one command `service.command` names, in a container (named after it unless named)."""
    import dataclasses

    from kodev.errors import GoError
    from kodev.network import Origin
    from kodev.services import container_spec
    from kodev.session import CommandServices

    plans = session.plan([service.command])
    if len(plans) != 1:
        raise GoError(f"{service.command}: names {len(plans)} commands; kodev run runs one.")
    plan = plans[0]
    service = dataclasses.replace(service, name=service.name or plan.container_name)
    spec = container_spec(service, session.cwd, "kodev run", remove_on_exit=remove_on_exit)
    check_network(session, [(spec, Origin("kodev run", "`--network host` (and no -p)"))])
    if watch:
        from kodev.watch import DevLoop

        return DevLoop(session, [CommandServices(plan, (spec,))], prefix_logs=False, swap=swap).run()
    from kodev.run import run_once

    return run_once(session, plan, spec)


def proxy_flags(proxy: str | None, upstream: str | None, ready: str | None, watch: bool) -> ProxySpec | None:
    """`kodev run`'s --proxy, --upstream and --ready, checked as kodev.toml's keys are."""
    from kodev.errors import ConfigError
    from kodev.proxy.spec import ProxySpec, parse_address

    if proxy is None:
        if upstream is not None or ready is not None:
            raise ConfigError("--upstream and --ready go with --proxy ADDR (where the dev proxy listens).")
        return None
    if not watch:
        raise ConfigError("--proxy needs --watch: the dev proxy is there to carry requests across rebuilds.")
    if upstream is None:
        raise ConfigError("--proxy needs --upstream ADDR: where the app itself listens (a bare port means "
                          "127.0.0.1), e.g. --proxy 8080 --upstream 9000.")
    listen, target = parse_address(proxy), parse_address(upstream)
    for flag, text, address in (("--proxy", proxy, listen), ("--upstream", upstream, target)):
        if address is None:
            raise ConfigError(f"{flag} {text}: not HOST:PORT or a port (1 to 65535).")
    assert listen is not None and target is not None
    if listen == target:
        raise ConfigError(f"--proxy and --upstream are both {proxy}: the app needs a port of its own.")
    if ready is not None and not ready.startswith("/"):
        raise ConfigError(f"--ready {ready}: not a path (it starts with '/', e.g. --ready /healthz).")
    return ProxySpec(listen, target, ready)


def push_flags(repo: str | None, bare: bool, base: bool, preserve: bool, tags: Sequence[str],
               insecure: Sequence[str], needed: bool = False) -> PushSettings | None:
    """`--push REPO` and its naming and tag flags, checked; None without --push (an error if `needed`)."""
    from kodev.errors import ConfigError
    from kodev.publish.registry import PushSettings

    namings = [name for name, chosen in (("bare", bare), ("base", base), ("preserve", preserve)) if chosen]
    if repo is None and needed:
        raise ConfigError("kodev resolve pushes the images it builds, and no registry is named: give --push REPO "
                          "(e.g. 127.0.0.1:5000/team) or set KO_DOCKER_REPO, as for ko.")
    if repo is None:
        if namings or tags or insecure:
            raise ConfigError("--bare, --base-import-paths, --preserve-import-paths, --tags and "
                              "--insecure-registry go with --push REPO (the registry to push to).")
        return None
    if len(namings) > 1:
        raise ConfigError("--bare, --base-import-paths and --preserve-import-paths each name images another "
                          "way: give one of them.")
    repository = repo.strip().rstrip("/")
    if "/" not in repository and "." not in repository and ":" not in repository:
        raise ConfigError(f"--push {repo}: not a registry repository (HOST[:PORT]/PATH, e.g. "
                          "127.0.0.1:5000/team).")
    if repository != repository.lower() or " " in repository:
        raise ConfigError(f"--push {repo}: a repository is lowercase, without spaces.")
    wanted = tuple(t.strip() for item in tags for t in item.split(",") if t.strip()) or ("latest",)
    bad = [t for t in wanted if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", t)]
    if bad:
        raise ConfigError(f"--tags: {', '.join(bad)} cannot be a tag (letters, digits, '_', '.', '-'; 128 at most).")
    return PushSettings(repository, namings[0] if namings else "md5", wanted, tuple(insecure))


def default_repo(config_path: Path | None) -> str | None:
    """Where `kodev resolve`, `kodev build` and `kodev watch -f k8s/` push without --push: KO_DOCKER_REPO (as
    ko reads it), else kodev.toml's `[publish] repo`. (`kodev watch` of services pushes only with --push:
    the dev loop is the local daemon's.)"""
    import os

    from kodev import config as config_stage

    return os.environ.get("KO_DOCKER_REPO") or config_stage.load(config_path, Path.cwd()).publish_repo or None


def build_repo(config_path: Path | None) -> str | None:
    """Where `kodev build` pushes without --push, as `ko build` does: KO_DOCKER_REPO (`ko.local`: the daemon),
    else kodev.toml's `[publish] repo`; None: the daemon, kodev's default."""
    import os

    if os.environ.get("KO_DOCKER_REPO") == "ko.local":
        return None
    return default_repo(config_path)


def watch_push(repo: str | None, files: Sequence[Path], out: Path | None, config_path: Path | None
               ) -> PushSettings | None:
    """`kodev watch --push REPO`, and with -f on Kubernetes YAML, `--out DIR`: where resolved manifests go."""
    import dataclasses

    from kodev import manifests
    from kodev.errors import ConfigError

    kubernetes = bool(files) and not is_compose(files)
    pushing = push_flags(repo or (default_repo(config_path) if kubernetes else None), False, False, False, [], [])
    if not kubernetes:
        if out is not None:
            raise ConfigError("--out DIR goes with -f on Kubernetes YAML and --push REPO: it is where the "
                              "resolved manifests of each round's images are written.")
        return pushing
    if pushing is None or out is None:
        raise ConfigError("kodev watch -f on Kubernetes YAML pushes the images its ko:// references name and "
                          "writes the resolved manifests: give --push REPO and --out DIR.")
    root = files[0] if files[0].is_dir() else files[0].parent
    return dataclasses.replace(pushing, manifests=tuple(manifests.collect(files)), manifests_root=root, out=out)


def is_compose(files: Sequence[Path]) -> bool:
    """Whether `kodev resolve -f` was given a compose project (else Kubernetes YAML): every file is one whose
    top level has `services` and no document has a `kind`."""
    import yaml

    for path in files:
        if not path.is_file():
            return False
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except (yaml.YAMLError, UnicodeDecodeError):
            return False  # the manifests' reader says what is wrong, with the line
        if len(documents) != 1 or not isinstance(documents[0], dict) or "kind" in documents[0] or (
                "services" not in documents[0]):
            return False
    return True


def resolve_manifests(session: Session, files: Sequence[Path]) -> str:
    """`kodev resolve -f k8s/`: build and push every ko:// reference; the YAML with digest references."""
    from kodev import manifests

    read = manifests.collect(files)
    where = manifests.origins(read)
    plans = session.plan(list(where), where)  # an error names the FILE:LINE of the reference at fault
    refs = {plan.command.import_path: built.published.ref for plan, built in zip(plans, session.build(plans),
                                                                                strict=True)}
    return "---\n".join(manifests.resolved(m, refs) for m in read).rstrip("\n")


def watch_loop(session: Session, paths: Sequence[str], compose_files: Sequence[Path], project_name: str | None,
               take_down: bool, swap: bool) -> int:
    """`kodev watch`: a compose project (its files given, or kodev.toml's `compose`), else kodev.toml's
    services and commands, or the commands named."""
    from kodev.watch import DevLoop

    files = list(compose_files) or ([session.config.root / f for f in session.config.compose] if not paths else [])
    if files and not is_compose(files):  # Kubernetes YAML: its ko:// images, pushed, the manifests resolved
        from kodev import manifests
        from kodev.session import CommandServices

        where = manifests.origins(manifests.collect(files))
        targets = [CommandServices(plan) for plan in session.plan(list(where), where)]
        return DevLoop(session, targets, prefix_logs=True, swap=swap).run()
    if files:
        return watch_compose(session, files, project_name, take_down, swap)
    targets = session.watch_targets(paths)
    check_network(session, [(spec, origin(session, spec)) for target in targets for spec in target.specs])
    return DevLoop(session, targets, prefix_logs=True, watch_paths=list(paths), swap=swap).run()


def debug_loop(session: Session, paths: Sequence[str], args: Sequence[str], dlv: str | None, wait: bool) -> int:
    """`kodev debug`: `kodev watch`'s services and commands, each under Delve, on binaries built for it.

    Delve comes first (built once per Go version and platform): a missing one fails before any build."""
    import time

    from kodev.debug.delve import DELVE_VERSION, DebugSettings, find_delve, is_cached
    from kodev.watch import DevLoop

    if args and not paths:
        from kodev.errors import ConfigError

        raise ConfigError(f"kodev debug -- {' '.join(args)}: arguments after -- go to the commands named on the "
                          "command line, and none is named. Name the command (kodev debug ./cmd/api -- ARGS), or "
                          "give a service's arguments with `args` in kodev.toml.")
    started = time.monotonic()
    cached = is_cached(session.go, session.platform)
    if not cached and not dlv and not session.settings.dlv:
        session.ui.info(f"building Delve {DELVE_VERSION} with {session.go.binary} (once per Go version and "
                        "platform; about a minute)")
    found = find_delve(session.go, session.platform, dlv, session.settings.dlv)
    if not cached:
        session.ui.stage("delve", "ready", time.monotonic() - started, str(found))
    targets = session.watch_targets(paths, tuple(args))
    check_network(session, [(spec, origin(session, spec)) for target in targets for spec in target.specs])
    return DevLoop(session, targets, prefix_logs=True, watch_paths=list(paths), swap=True,
                   debug=DebugSettings(found, wait)).run()


def watch_compose(session: Session, files: list[Path], project_name: str | None, take_down: bool,
                   swap: bool) -> int:
    from kodev.compose import find_compose
    from kodev.compose_build import load_with_own_refs
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
    commands = session.compose_targets(project)
    client = session.daemon.client
    swapping = ComposeSwap(Supervision(session.go, client, force_copy=session.settings.swap_copy), client,
                           {s: c.plan.command.app_name for c in commands for s in c.compose}) if swap else None
    stack = ComposeStack(cli, project, {s: c.plan.ref for c in commands for s in c.compose}, client,
                         take_down=take_down, swap=swapping)
    return DevLoop(session, commands, prefix_logs=True, stack=stack, swap=swap).run()



def check_network(session: Session, specs: Sequence[tuple[ContainerSpec, Origin]]) -> None:
    """Before anything is built: a bridge-less daemon cannot publish ports (error) nor reach a default network."""
    from kodev.network import check

    for warning in check(session.daemon.client, specs):
        session.ui.warn(warning)


def origin(session: Session, spec: ContainerSpec) -> Origin:
    from kodev.network import Origin

    if spec.service in session.config.services:
        return Origin(f"{session.config.describe()}: services.{spec.service}",
                      'network = "host" in that table (and no ports)')
    return Origin(f"kodev watch {spec.command}", 'a [services.NAME] table in kodev.toml with network = "host"')
