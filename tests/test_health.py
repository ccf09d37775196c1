"""DaemonPacer: when the loop checks the daemon, and how it backs off while the daemon is away."""

from __future__ import annotations

import time

import pytest

from kodev import health
from kodev.health import DaemonPacer

REAL_MONOTONIC = time.monotonic


class FakeTime:
    """Stands in for the `time` module as kodev.health sees it; the real time.monotonic is untouched."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(health, "time", fake)  # the module's own name for `time`, not the global function
    return fake


def test_only_kodev_health_sees_the_fake_clock(clock: FakeTime) -> None:
    assert time.monotonic is REAL_MONOTONIC  # every other module keeps the real clock


def test_idle_checks_every_few_seconds(clock: FakeTime) -> None:
    pacer = DaemonPacer()
    assert pacer.due()
    pacer.checked()
    assert not pacer.due()
    clock.now += health.HEALTH_SECONDS
    assert pacer.due()


def test_soon_brings_the_next_check_forward_but_never_back(clock: FakeTime) -> None:
    pacer = DaemonPacer()
    pacer.checked()
    pacer.soon(0.5)
    clock.now += 0.5
    assert pacer.due()
    pacer.checked()
    pacer.soon(60)  # later than the regular check: no effect
    clock.now += health.HEALTH_SECONDS
    assert pacer.due()


def test_lost_is_news_once_and_retries_back_off_to_a_ceiling(clock: FakeTime) -> None:
    pacer = DaemonPacer()
    assert pacer.lost() is True
    assert pacer.lost() is False  # said once
    waits = []
    for _ in range(8):
        start = clock.now
        while not pacer.due():
            clock.now += 0.25
        waits.append(clock.now - start)
        pacer.retry_failed()
    assert waits[0] == health.RETRY_FIRST_SECONDS
    assert waits == sorted(waits)  # never shorter: no spinning
    assert max(waits) <= health.RETRY_MAX_SECONDS
    pacer.back()
    assert not pacer.down and not pacer.due()
    assert pacer.lost() is True  # a later outage is news again
