"""`kodev run` without --watch: build, run one container in the foreground, exit with its exit code."""

from __future__ import annotations

import threading

from kodev.containers import Containers, LogFollower, Owner
from kodev.services import ContainerSpec
from kodev.session import Session, Target
from kodev.signals import interrupts_as_keyboard, shielded


def run_once(session: Session, target: Target, spec: ContainerSpec) -> int:
    """The container's exit code; Ctrl-C or SIGTERM stop and remove it and return 0."""
    ui = session.ui
    containers = Containers(session.daemon.client, Owner.current())
    finished = threading.Event()
    exit_codes: list[int] = []

    def on_exit(_service: str, _container_id: str, code: int | None, _lines: list[str]) -> None:
        if code is not None:
            exit_codes.append(code)
        finished.set()

    with interrupts_as_keyboard():
        container_id = None
        try:
            reaped = containers.reap_orphans()
            if reaped:
                ui.info(f"removed containers left by a kodev that is gone: {', '.join(reaped)}")
            containers.claim_name(spec)
            session.builder.build([target.plan])
            container_id = containers.create_and_start(spec, target.plan.ref)
            follower = LogFollower(session.daemon.client, spec.service, container_id,
                                   lambda _s, stream, line: ui.raw(stream, line), on_exit)
            follower.start()
            while not finished.wait(0.5):
                if not follower.is_alive() and not finished.is_set():
                    break  # the log stream broke without an exit code (daemon gone)
            follower.join(timeout=5)
            code = exit_codes[0] if exit_codes else containers.exit_code(container_id)
            if spec.remove_on_exit:
                containers.remove(container_id, 0)
            return code if code is not None else 1
        except KeyboardInterrupt:
            with shielded():
                removed = containers.cleanup({spec.service: spec.stop_timeout})
            if removed:
                ui.info(f"stopped and removed {', '.join(removed)}")
            return 0
