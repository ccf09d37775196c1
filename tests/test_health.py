"""DaemonPacer: when the loop checks the daemon, and how it backs off while the daemon is away."""

from __future__ import annotations

import pytest

from kodev import health
from kodev.health import DaemonPacer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(health.time, "monotonic", lambda: now[0])
    return now


def test_idle_checks_every_few_seconds(clock: list[float]) -> None:
    pacer = DaemonPacer()
    assert pacer.due()
    pacer.checked()
    assert not pacer.due()
    clock[0] += health.HEALTH_SECONDS
    assert pacer.due()


def test_soon_brings_the_next_check_forward_but_never_back(clock: list[float]) -> None:
    pacer = DaemonPacer()
    pacer.checked()
    pacer.soon(0.5)
    clock[0] += 0.5
    assert pacer.due()
    pacer.checked()
    pacer.soon(60)  # later than the regular check: no effect
    clock[0] += health.HEALTH_SECONDS
    assert pacer.due()


def test_lost_is_news_once_and_retries_back_off_to_a_ceiling(clock: list[float]) -> None:
    pacer = DaemonPacer()
    assert pacer.lost() is True
    assert pacer.lost() is False  # said once
    waits = []
    for _ in range(8):
        start = clock[0]
        while not pacer.due():
            clock[0] += 0.25
        waits.append(clock[0] - start)
        pacer.retry_failed()
    assert waits[0] == health.RETRY_FIRST_SECONDS
    assert waits == sorted(waits)  # never shorter: no spinning
    assert max(waits) <= health.RETRY_MAX_SECONDS
    pacer.back()
    assert not pacer.down and not pacer.due()
    assert pacer.lost() is True  # a later outage is news again
