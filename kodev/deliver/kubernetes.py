"""Delivery to a Kubernetes object (`kodev watch -k`): one per object that names a command's image.

A binary-only change is swapped into each pod's supervisor over `attach` (kodev/kube/swap.py) and serves
before its image is pushed; the image then becomes the digest the object's next rollout applies. Anything
else is a rollout: the object is applied again with the new digest (every other image it names as
last applied) and the round waits until its new pods are Ready. Before the stack's first apply (the first
round, while other images are still building) a delivery defers: the stack applies everything at once.
kodev starts no container here: what runs is the cluster's, and its pods' logs are the stack's to follow.
"""

from __future__ import annotations

import logging
import time

from kodev.deliver import Delivered, Delivery, Done, Pending, Release
from kodev.kube.objects import KubeObject
from kodev.kube.stack import KubeStack
from kodev.publish import Published

log = logging.getLogger(__name__)


class KubeDelivery:
    stop_timeout = 30  # the pod's own terminationGracePeriodSeconds applies; kodev never stops pods itself

    def __init__(self, stack: KubeStack, thing: KubeObject, import_path: str) -> None:
        self.stack = stack
        self.key = thing.key  # the object as the manifests say it now is the stack's (they may be edited)
        self.import_path = import_path
        self.service: str | None = str(thing.key)

    def prepare(self) -> None:
        pass  # the cluster names the pods

    def wants(self, release: Release) -> bool:
        return release.changed or not self.stack.started

    def begin(self, release: Release) -> Pending:
        """A binary-only change is swapped into the pods (when they run kodev's supervisor); anything else, or
        a swap that cannot reach every pod, rolls the object out."""
        current = self.stack.object(self.key)
        if release.binary is None or release.kodata is not None or not self.stack.started or current is None:
            return _RollingOut(self)
        assert self.service is not None
        started = time.monotonic()
        try:
            swapped = self.stack.swap_in(current, self.import_path, release.binary)
        except Exception as exc:  # an attach refused, a pod gone midway...
            log.debug("swap failed", exc_info=True)
            return _RollingOut(self, f"swapping the binary into {self.service} failed ({exc}); rolled it out instead")
        if not swapped:
            return _RollingOut(self)
        return _Swapped(self, Delivered(self.service, "swapped", time.monotonic() - started))

    def owns(self, container_id: str) -> bool:
        return False

    def lost(self) -> None:
        pass  # the cluster restarts what fails; a deleted object is applied again by the next rollout

    def container(self) -> str | None:
        return None

    def close(self) -> None:
        pass  # the stack leaves (or deletes) the objects as a whole

    def missed(self, ended_at: float) -> bool:
        return False

    def take_over(self, previous: Delivery) -> bool:
        return isinstance(previous, KubeDelivery) and previous.service == self.service


class _Swapped(Done):
    """Serves already; the image pushed after it is what the next rollout of the object applies."""

    def __init__(self, delivery: KubeDelivery, delivered: Delivered) -> None:
        super().__init__(delivered)
        self.delivery = delivery

    def complete(self, published: Published | None) -> Delivered:
        if published is not None:
            self.delivery.stack.pushed(self.delivery.import_path, published.ref)
        return self.delivered


class _RollingOut:
    def __init__(self, delivery: KubeDelivery, note: str = "") -> None:
        self.delivery = delivery
        self.note = note

    def complete(self, published: Published | None) -> Delivered:
        delivery, stack = self.delivery, self.delivery.stack
        assert delivery.service is not None
        if published is not None:
            stack.pushed(delivery.import_path, published.ref)
        if not stack.started:  # the first build: the stack applies every object once all images are pushed
            return Delivered(delivery.service, "deferred", 0.0)
        started = time.monotonic()
        current = stack.object(delivery.key)
        if current is None:  # taken out of the manifests since: nothing of it to roll out
            return Delivered(delivery.service, "kept", 0.0)
        stack.roll(current)
        return Delivered(delivery.service, "rolled-out", time.monotonic() - started, note=self.note)

    def abort(self) -> Delivered | None:
        return None  # nothing was applied before the push: the running pods keep the last image
