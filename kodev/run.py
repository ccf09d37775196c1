"""`kodev run` without --watch: build, run one container in the foreground, exit with its exit code."""

from __future__ import annotations

import threading

from kodev.containers import Containers
from kodev.errors import KodevError
from kodev.logs import LogFollower
from kodev.ownership import Owner
from kodev.plan import CommandPlan
from kodev.services import ContainerSpec
from kodev.session import Session
from kodev.signals import interrupts_as_keyboard, raise_if_stop_asked, shielded


def run_once(session: Session, plan: CommandPlan, spec: ContainerSpec) -> int:
    """The container's exit code; Ctrl-C or SIGTERM stop and remove it and return 0 (1 if that failed)."""
    ui = session.ui
    containers = Containers(session.daemon.client, Owner.current())
    finished = threading.Event()
    exit_codes: list[int] = []

    def on_exit(_service: str, _container_id: str, code: int | None, _lines: list[str]) -> None:
        if code is not None:
            exit_codes.append(code)
        finished.set()

    with interrupts_as_keyboard():
        try:
            reaped = containers.reap_orphans()
            if reaped:
                ui.info(f"removed containers left by a kodev that is gone: {', '.join(reaped)}")
            containers.claim_name(spec)
            session.builder.build([plan])
            container_id = containers.create_and_start(spec, plan.ref)
            follower = LogFollower(session.daemon.client, spec.service, container_id,
                                   lambda s, stream, line: ui.raw(stream, line, s), on_exit)
            follower.start()
            while not finished.wait(0.5):
                raise_if_stop_asked()
                if not follower.is_alive() and not finished.is_set():
                    break  # the log stream broke without an exit code (daemon gone)
            follower.join(timeout=5)
            code = exit_codes[0] if exit_codes else containers.exit_code(container_id)
            if spec.remove_on_exit:
                containers.remove(container_id, 0)
            return code if code is not None else 1
        except KeyboardInterrupt:
            with shielded():
                try:
                    removed = containers.cleanup({spec.service: spec.stop_timeout})
                except KodevError as exc:
                    ui.error(KodevError(f"{exc}. The container {spec.name!r} may be left behind; the next kodev "
                                        "removes it (it is labelled with this kodev, which is gone then)."))
                    return 1
            if removed:
                ui.info(f"stopped and removed {', '.join(removed)}")
            return 0
