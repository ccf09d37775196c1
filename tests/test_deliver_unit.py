"""Deliveries (kodev/deliver/): when a recreate wants a release, and what begin/complete/abort do to it.

`RecreateDelivery` runs over a fake `Containers` whose API records calls: the cases here are decided by the
delivery's own state (down, restart, the container it owns), and an abort needs a publish that failed,
which the real daemon cannot be made to do at will. Replacing real containers around a load (rename, stop,
undo) is tested against the real daemon in tests/integration/test_replacement.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kodev.deliver import Release
from kodev.deliver.choose import deliveries_for
from kodev.deliver.image_only import ImageOnly
from kodev.deliver.recreate import RecreateDelivery
from kodev.publish import Published
from kodev.services import ContainerSpec
from tests.fakes import image_of

REF = "kodev.local/server:latest"


class FakeContainers:
    """A `ContainerRuntime` that records what a delivery asks of it; new containers are numbered."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.made = 0

    def rename(self, container_id: str, name: str) -> None:
        self.calls.append(("rename", container_id, name))

    def stop(self, container_id: str, timeout: int) -> None:
        self.calls.append(("stop", container_id))

    def resume(self, container_id: str) -> None:
        self.calls.append(("start", container_id))

    def _new(self) -> str:
        self.made += 1
        return f"new-{self.made}"

    def claim_name(self, spec: ContainerSpec) -> Any | None:
        self.calls.append(("claim", spec.name))
        return None

    def create_and_start(self, spec: ContainerSpec, image: str) -> str:
        self.calls.append(("create_and_start", image))
        return self._new()

    def create(self, spec: ContainerSpec, image: str, entrypoint: list[str] | None = None,
               extra_volumes: Mapping[str, dict[str, str]] | None = None, control_channel: bool = False,
               capabilities: Sequence[str] = ()) -> str:
        self.calls.append(("create", image))
        return self._new()

    def start(self, container_id: str, spec: ContainerSpec) -> None:
        self.calls.append(("start", container_id))

    def remove(self, container_id: str, timeout: int) -> None:
        self.calls.append(("remove", container_id))


def recreate(restart: bool = True) -> tuple[RecreateDelivery, FakeContainers]:
    containers = FakeContainers()
    spec = ContainerSpec(service="web", name="kodev-web", command="./cmd/server", restart=restart, stop_timeout=3)
    return RecreateDelivery(spec, containers), containers


def release(changed: bool) -> Release:
    return Release(REF, image_of("base", "binary"), changed)


PUBLISHED = Published(REF, "sha256:new", 10, 0.01)


def test_a_new_service_is_down_and_wants_even_an_unchanged_image() -> None:
    delivery, containers = recreate()
    assert delivery.container() is None
    assert delivery.wants(release(changed=False))
    delivered = delivery.begin(release(changed=False)).complete(None)
    assert (delivered.service, delivered.how, delivered.container_id) == ("web", "started", "new-1")
    assert containers.calls == [("create_and_start", REF)]
    assert delivery.container() == "new-1" and delivery.owns("new-1")
    assert not delivery.wants(release(changed=False))  # up, same image: nothing to do
    assert delivery.wants(release(changed=True))


def test_restart_false_is_started_once_then_kept() -> None:
    delivery, _ = recreate(restart=False)
    assert delivery.wants(release(changed=False))  # down: it is started
    delivery.begin(release(changed=False)).complete(None)
    assert not delivery.wants(release(changed=True))  # up: a new image does not recreate it
    delivery.lost()  # it exited
    assert delivery.wants(release(changed=False))  # down again: started again


def test_lost_makes_a_running_service_want_the_next_release() -> None:
    delivery, _ = recreate()
    delivery.begin(release(changed=True)).complete(PUBLISHED)
    assert not delivery.wants(release(changed=False))
    delivery.lost()
    assert delivery.wants(release(changed=False))


def test_recreate_replaces_the_running_container() -> None:
    delivery, containers = recreate()
    delivery.begin(release(changed=True)).complete(PUBLISHED)
    old = delivery.container()
    assert old == "new-1"
    pending = delivery.begin(release(changed=True))
    assert not delivery.owns(old)  # its exit is expected now, not news
    delivered = pending.complete(PUBLISHED)
    assert (delivered.how, delivered.container_id) == ("recreated", "new-2")
    assert delivery.container() == "new-2" and delivery.owns("new-2") and not delivery.owns(old)
    assert ("rename", old, f"kodev-web-replaced-{old}") in containers.calls
    assert ("stop", old) in containers.calls and ("remove", old) in containers.calls
    assert containers.calls[-1] == ("start", "new-2")


def test_abort_puts_the_old_container_back() -> None:
    delivery, containers = recreate()
    delivery.begin(release(changed=True)).complete(PUBLISHED)
    old = delivery.container()
    assert old is not None
    pending = delivery.begin(release(changed=True))
    pending.abort()  # the publish failed
    assert delivery.container() == old and delivery.owns(old)
    assert containers.calls[-2:] == [("rename", old, "kodev-web"), ("start", old)]
    assert not any(call[0] == "remove" for call in containers.calls)
    assert not delivery.wants(release(changed=False))  # it serves the last good build


def test_abort_of_a_first_start_leaves_it_down() -> None:
    delivery, containers = recreate()
    delivery.begin(release(changed=True)).abort()
    assert containers.calls == [] and delivery.container() is None
    assert delivery.wants(release(changed=False))


def test_prepare_claims_the_name() -> None:
    delivery, containers = recreate()
    delivery.prepare()
    assert containers.calls == [("claim", "kodev-web")]


def test_image_only_wants_nothing_and_delivers_nothing() -> None:
    delivery = ImageOnly()
    assert delivery.service is None and delivery.container() is None
    assert not delivery.wants(release(changed=True)) and not delivery.wants(release(changed=False))
    delivered = delivery.begin(release(changed=True)).complete(PUBLISHED)
    assert delivered.how == "kept" and delivered.container_id is None and delivered.seconds == 0
    assert not delivery.owns("anything")


def test_choose_one_recreate_per_service_or_image_only(tmp_path: Path) -> None:
    containers = FakeContainers()
    assert [type(d) for d in deliveries_for([], [], containers, None)] == [ImageOnly]
    specs = [ContainerSpec(service=name, name=name, command="./cmd/server") for name in ("a", "b")]
    chosen = deliveries_for(specs, [], containers, None)
    assert [type(d) for d in chosen] == [RecreateDelivery, RecreateDelivery]
    assert [d.service for d in chosen] == ["a", "b"]
