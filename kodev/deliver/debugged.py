"""Delivery under Delve (`kodev debug`): a swap whose new binary Delve restarts, so the IDE stays attached.

Each container runs kodev's supervisor with -dlv: the supervisor runs `dlv exec --headless
--accept-multiclient` on the app from the path swapped binaries take (supervisor.go), stopped at its start.
kodev keeps one connection to each Delve, as one more client: its `continue` lets the app run (unless
--wait). A new binary (and/or kodata files) is put in place as a swap puts it, then kodev asks Delve to
restart the process (`DelveClient.restart`): every client stays connected and Delve sets its breakpoints
again on the new code, reporting those it could not; the process runs on only if kodev's `continue` still
held it (a debugger that took it over finds it waiting for its own continue: rpc.py says why). In copy
mode the binary goes in with `put_archive`, which returns once it is in place (the control channel does not
say when the supervisor has renamed it).
Anything a swap cannot carry recreates the container, under a new Delve (the IDE attaches again).

Docker's default seccomp profile allows ptrace on the kernels Docker supports, and Delve traces only its
own child: no capability or security option is added.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kodev.containers import ContainerRuntime
from kodev.debug.delve import FIRST_PORT, DebugSettings
from kodev.debug.rpc import DelveClient, DelveRPCError, Restarted
from kodev.deliver import Delivered, Delivery, Release
from kodev.deliver.container_user import container_user
from kodev.deliver.supervision import COPY_DIR, Supervision, SwapKit, place_binary
from kodev.deliver.swap import SwapDelivery
from kodev.services import ContainerSpec, PortBinding

log = logging.getLogger(__name__)
DLV = ".dlv"  # Delve's name beside the supervisor (a Go command is never named so)
LISTEN_SECONDS = 15.0  # a new Delve answers within this, or the user is told to look at its output


@dataclass(frozen=True)
class DebugTarget:
    """Where one service's Delve listens."""

    port: int
    host_network: bool  # on the host's network Delve listens on 127.0.0.1; else on all of the container's

    @property
    def listen(self) -> str:
        """Delve's --listen, inside the container."""
        return f"{'127.0.0.1' if self.host_network else '0.0.0.0'}:{self.port}"

    @property
    def address(self) -> str:
        """Where a debugger on this machine attaches (the port is published to 127.0.0.1 off the host network)."""
        return f"127.0.0.1:{self.port}"


def debug_targets(specs: Sequence[ContainerSpec]) -> dict[str, DebugTarget]:
    """Each service's Delve port: its `delve = PORT`, else 2345 and up, skipping the ports configured."""
    configured = {spec.delve for spec in specs if spec.delve is not None}
    targets: dict[str, DebugTarget] = {}
    port = FIRST_PORT
    for spec in specs:
        chosen = spec.delve
        if chosen is None:
            while port in configured:
                port += 1
            chosen, port = port, port + 1
        targets[spec.service] = DebugTarget(chosen, spec.network == "host")
    return targets


def debug_spec(spec: ContainerSpec, target: DebugTarget) -> ContainerSpec:
    """`spec` with the port its Delve takes (a reload that moves it makes the container stale), published to
    127.0.0.1 when the container has a network of its own."""
    spec = dataclasses.replace(spec, delve=target.port)
    if target.host_network:
        return spec
    return dataclasses.replace(spec, ports=(*spec.ports, PortBinding(target.port, "tcp", "127.0.0.1", target.port)))


class DebugDelivery(SwapDelivery):
    """A service run under Delve: binary and kodata changes are restarted by Delve, never by killing it."""

    # The supervisor puts the image's binary at the path Delve restarts from, in the mounted directory.
    writable_mount = True

    def __init__(self, spec: ContainerSpec, containers: ContainerRuntime, supervision: Supervision, app: str,
                 settings: DebugSettings, target: DebugTarget) -> None:
        super().__init__(debug_spec(spec, target), containers, supervision, app)
        self.settings = settings
        self.target = target
        self.restarted: Restarted | None = None  # what the last swap's restart reported
        self.delve: DelveClient | None = None  # kodev's own connection to this container's Delve (rpc.py)
        self.let_run = False  # whether kodev has let this container's app run yet (not under --wait)

    def tools(self, kit: SwapKit) -> dict[str, Path]:
        return {**super().tools(kit), DLV: self.settings.dlv}

    def entrypoint(self, kit: SwapKit) -> list[str]:
        # Delve always starts the app stopped: kodev's own `continue` lets it run (unless --wait), so that
        # kodev knows whether it, or a debugger, holds the process when a save comes (rpc.py).
        return kit.entrypoint(self.app, ["-dlv", f"{kit.directory}/{DLV}", "-dlv-listen", self.target.listen,
                                         "-dlv-wait"])

    def capabilities(self, kit: SwapKit) -> tuple[str, ...]:
        return ()  # Delve restarts the app, not the supervisor: no port is held, nothing is added

    def take_over(self, previous: Delivery) -> bool:
        if not super().take_over(previous):
            return False
        if isinstance(previous, DebugDelivery):
            self.delve, previous.delve = previous.delve, None
            self.let_run = previous.let_run
        return True

    def _swap(self, release: Release) -> None:
        """kodata files and the binary put in place (the supervisor under -dlv restarts nothing), then Delve
        restarts the process from the same path: the new binary, every client still connected."""
        if self.kit is None or self.container_id is None:
            raise OSError("no container under Delve to swap into")
        client = self.supervision.client
        if release.kodata is not None:
            with open(release.kodata, "rb") as archive:
                client.api.put_archive(self.container_id, "/", archive)
        if release.binary is not None:
            if self.kit.mode == "mount":
                assert self.directory is not None
                place_binary(release.binary, self.directory, self.app)
            else:
                client.api.put_archive(self.container_id, COPY_DIR, self._binary_archive(release.binary))
        if self.delve is None:  # lost, or never made: a connection of its own, which holds nothing
            self.delve = DelveClient.connect(self.target.address)
        try:
            self.restarted = self.delve.restart(resume=not self.settings.wait and not self.let_run)
            self.let_run = self.let_run or self.restarted.resumed
        except DelveRPCError:
            self._disconnect()
            raise

    def _binary_archive(self, binary: Path) -> bytes:
        """Copy mode: the binary as a one-file archive for COPY_DIR, owned by the container's user."""
        assert self.container_id is not None
        owner = container_user(self.supervision.client, self.container_id)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive, open(binary, "rb") as file:
            info = tarfile.TarInfo(PurePosixPath(self.app).name)
            info.size, info.mode, info.mtime = os.fstat(file.fileno()).st_size, 0o555, 0
            if owner is not None:
                info.uid, info.gid = owner.uid, owner.gid
            archive.addfile(info, file)
        return buffer.getvalue()

    def swapped(self, delivered: Delivered) -> Delivered:
        restarted, self.restarted = self.restarted, None
        return dataclasses.replace(delivered, restarted=restarted)

    def started(self, delivered: Delivered) -> Delivered:
        """A new container: once its Delve answers it is reported (an IDE attaching at once finds it), and
        kodev lets the app run unless --wait."""
        problem = self._attach()
        if problem is None:
            return dataclasses.replace(delivered, debugger=self.target.address)
        return dataclasses.replace(delivered, note=" ".join(filter(None, (delivered.note, problem))))

    def restored(self, container_id: str) -> None:
        """Started again after a failed load: a new Delve in it, which waits for kodev's continue."""
        super().restored(container_id)
        if self.down:
            return  # it did not come back: the next release starts a new one
        problem = self._attach()
        if problem is not None:
            log.warning("%s", problem)

    def _attach(self) -> str | None:
        """Connect kodev's client to the container's new Delve and, unless --wait, let the app run; what
        went wrong, if anything."""
        self._disconnect()
        self.let_run = False
        deadline = time.monotonic() + LISTEN_SECONDS
        while True:
            try:
                delve = DelveClient.connect(self.target.address, timeout=0.5)  # between looks at the container
                try:
                    delve.call("GetVersion", {})
                    if not self.settings.wait:
                        delve.resume()
                        self.let_run = True
                except DelveRPCError:
                    delve.close()
                    raise
                self.delve = delve
                return None
            except DelveRPCError as exc:  # a published port accepts before Delve does: asked again
                ended = self._ended_output()
                if ended is not None:
                    return (f"Delve could not start {self.spec.name}'s app under the debugger; it said: {ended!r}. "
                            "'operation not permitted' means the daemon refuses ptrace: Docker's default "
                            "seccomp profile allows it (on kernels from 4.8), a stricter one (dockerd "
                            "--seccomp-profile) must allow ptrace for kodev debug.")
                if time.monotonic() >= deadline:
                    log.debug("Delve of %s: %s", self.spec.name, exc)
                    return (f"Delve in {self.spec.name} did not answer at {self.target.address} within "
                            f"{LISTEN_SECONDS:.0f}s ({exc}); the service's output says why.")
                time.sleep(0.05)

    def _ended_output(self) -> str | None:
        """The last lines of this container's output if it has stopped running (Delve gave up), else None."""
        if self.container_id is None:
            return None
        api = self.supervision.client.api
        try:
            if api.inspect_container(self.container_id)["State"]["Running"]:
                return None
            tail = api.logs(self.container_id, stdout=True, stderr=True, tail=3)
        except Exception as exc:  # gone altogether: the loop reports the container's end
            log.debug("inspecting %s: %s", self.spec.name, exc)
            return None
        text = tail.decode(errors="replace") if isinstance(tail, bytes) else str(tail)
        return " ".join(line.strip() for line in text.splitlines() if line.strip()) or "(nothing)"

    def _disconnect(self) -> None:
        if self.delve is not None:
            self.delve.close()
            self.delve = None

    def close(self) -> None:
        self._disconnect()
        super().close()
