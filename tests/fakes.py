"""Small fakes behind kodev's seams (Publisher, Delivery/Pending, the builder), for unit tests of the composition.

Each stands in only where the real part cannot show the case on demand: `go build` producing the same binary
twice or failing at will, a daemon refusing a load or vanishing mid-round. Tests against the real Go and Docker
are in tests/integration/.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from kodev import config as config_stage
from kodev.builder import Builder, Snapshot
from kodev.config import Config
from kodev.daemon import Daemon
from kodev.deliver import Delivered, Release
from kodev.directbuild import DirectBuilds
from kodev.errors import CompileError
from kodev.gobuild import Binary, BuildRequest, Superseded
from kodev.gomod import MainPackage
from kodev.gotool import GoTool
from kodev.image.assemble import Image, ImageSpec
from kodev.image.base import BaseImage
from kodev.image.layers import Layer
from kodev.image.resolve import Bases
from kodev.plan import CommandPlan
from kodev.platform import Platform
from kodev.publish import Published, Publisher
from kodev.session import Session
from kodev.templates import GitHead
from kodev.ui import UI

MODULE = "example.com/m"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def layer(name: str) -> Layer:
    """A layer known by name only: its file is never written (nothing here reads layer files)."""
    digest = sha(name)
    return Layer(diff_id=f"sha256:{digest}", path=Path("/nonexistent") / f"{digest}.tar", size=1, created_by=name)


def image_of(*names: str, config: str = "") -> Image:
    layers = tuple(layer(n) for n in names)
    return Image(json.dumps({"layers": [x.diff_id for x in layers], "extra": config}).encode(), layers)


def plan(root: Path, name: str, module: str = MODULE) -> CommandPlan:
    command = MainPackage(import_path=f"{module}/cmd/{name}", dir=root / "cmd" / name, module_path=module,
                          module_dir=root)
    return CommandPlan(command=command, request=BuildRequest(command), base="static", base_where="test",
                       repository=f"kodev.local/{name}")


class RecordingPublisher:
    """A destination that records what it was sent; `fail` makes it refuse a reference (the real daemon
    cannot be told to refuse one particular load)."""

    def __init__(self, name: str = "fake", log: list[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.log = log if log is not None else []
        self.sent: list[str] = []  # refs, in order
        self.fail: dict[str, BaseException] = {}
        self.replaced: dict[str, str] = {}  # ref -> the image ID the next publish reports as replaced
        self.closed = False

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        self.log.append((self.name, ref))
        if ref in self.fail:
            raise self.fail[ref]
        self.sent.append(ref)
        replaced = self.replaced.pop(ref, None)
        return Published(ref, image.config_digest, 1_234_567, 0.03, replaced=(replaced,) if replaced else ())

    def close(self) -> None:
        self.log.append((self.name, "close"))
        self.closed = True


class FakeBuilder:
    """An `ImageBuilder` for `Rebuild`: what `go build` yields is set per command (`binaries`), a compile
    error is raised at will (`compile_error`), images are real `Image` values over named layers."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.binaries: dict[str, str] = {}  # import path -> the next binary's content
        self.kodata: dict[str, str] = {}  # import path -> the kodata's content
        self.compile_error: CompileError | None = None
        self.compiled: list[list[str]] = []
        self.pruned: list[set[Path]] = []
        self.log: list[tuple[str, ...]] = []  # ("layer", import path) as binary layers are made
        self.on_layer: Callable[[CommandPlan], None] | None = None  # e.g. a file edited mid-round

    def compile(self, plans: Sequence[CommandPlan], scratch: Path, strip: bool = False,
                superseded: Callable[[], bool] | None = None, debug: bool = False,
                direct: DirectBuilds | None = None) -> tuple[list[Binary], float]:
        self.compiled.append([p.command.import_path for p in plans])
        if self.compile_error is not None:
            raise self.compile_error
        if superseded is not None and superseded():  # as gobuild asks while `go build` runs
            raise Superseded
        binaries = []
        for p in plans:
            content = self.binaries.get(p.command.import_path, "v1")
            binaries.append(Binary(p.command, scratch / p.command.app_name, sha(f"{p.command.import_path}:{content}"),
                                   0.0))
        return binaries, 0.25

    def binary_layer(self, plan: CommandPlan, binary: Binary) -> Layer:
        self.log.append(("layer", plan.command.import_path))
        if self.on_layer is not None:
            self.on_layer(plan)
        return layer(f"binary:{binary.digest}")

    def heads(self, commands: Sequence[MainPackage]) -> dict[Path, GitHead | None]:
        return {}

    def snapshot(self, plan: CommandPlan, git: GitHead | None) -> Snapshot:
        import_path = plan.command.import_path
        self.log.append(("kodata", import_path))
        spec = ImageSpec(import_path, plan.command.app_name, Platform("linux", "amd64"), 0, {})
        kodata = layer(f"kodata:{import_path}:{self.kodata.get(import_path, '')}")
        return Snapshot(plan, BaseImage("fake", (layer("base"),)), kodata, frozenset(), spec)

    def image(self, snapshot: Snapshot, top: Layer) -> Image:
        layers = (*snapshot.base.layers, snapshot.kodata, top)
        config = json.dumps({"cmd": snapshot.spec.import_path, "layers": [x.diff_id for x in layers]}).encode()
        return Image(config, layers)

    def publish(self, plan: CommandPlan, image: Image) -> Published:
        return self.publisher.publish(image, plan.ref)

    def prune(self, in_use: set[Path]) -> None:
        self.pruned.append(in_use)


class FakePruning:
    """Counts prunes (what pruning removes is tested against the real daemon: tests/integration/test_publish.py)."""

    def __init__(self) -> None:
        self.prunes = 0

    def prune(self) -> list[str]:
        self.prunes += 1
        return []


class FakeDaemon:
    """`reachable` on demand (a daemon that dies between a refused load and the check cannot be arranged)."""

    def __init__(self) -> None:
        self.up = True
        self.endpoint = "unix:///fake.sock"

    def reachable(self) -> bool:
        return self.up


class FakeDelivery:
    """A workload that records begin/complete/abort; `running` is its container, `down` makes it want even
    an unchanged release (as a recreate does for a stopped service)."""

    def __init__(self, service: str, log: list[tuple[str, ...]], running: str | None = None,
                 down: bool = False) -> None:
        self.service: str | None = service
        self.stop_timeout = 0
        self.log = log
        self.running = running
        self.down = down
        self.releases: list[Release] = []

    def prepare(self) -> None:
        pass

    def wants(self, release: Release) -> bool:
        return release.changed or self.down

    def begin(self, release: Release) -> FakePending:
        self.releases.append(release)
        self.log.append(("begin", str(self.service)))
        return FakePending(self)

    def owns(self, container_id: str) -> bool:
        return container_id == self.running

    def lost(self) -> None:
        self.down = True

    def container(self) -> str | None:
        return self.running

    def close(self) -> None:
        pass

    def missed(self, ended_at: float) -> bool:
        return False

    def take_over(self, previous: object) -> bool:
        return False


class FakePending:
    def __init__(self, delivery: FakeDelivery) -> None:
        self.delivery = delivery

    def complete(self, published: Published | None) -> Delivered:
        service = str(self.delivery.service)
        self.delivery.log.append(("complete", service, published.image_id if published else "-"))
        self.delivery.running, self.delivery.down = f"c-{service}", False
        return Delivered(service, "recreated", 0.05, f"c-{service}")

    def abort(self) -> Delivered | None:
        self.delivery.log.append(("abort", str(self.delivery.service)))
        return None


def offline_session(cwd: Path, go: GoTool, config: Config | None = None) -> Session:
    """A session whose daemon is never reached (planning, watch targets, reloads): no Docker call is made,
    so an unreachable endpoint stands in for one."""
    config = config or config_stage.load(None, cwd)
    ui = UI(stdout=io.StringIO(), stderr=io.StringIO())
    platform = Platform("linux", "amd64")
    daemon = Daemon(None, "unix:///nonexistent/docker.sock (never reached by these tests)")
    publisher = RecordingPublisher()
    builder = Builder(config, go, platform, Bases(daemon, platform, False, cwd, ui.info), publisher, ui)
    return Session(cwd=cwd, ui=ui, config=config, go=go, daemon=daemon, platform=platform, publisher=publisher,
                   builder=builder)
