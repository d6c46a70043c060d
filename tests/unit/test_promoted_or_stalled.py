"""The stall-aware end condition: it waits through the pending's start, then stops a stuck upgrade."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_kuberay.drive import upgrade as upgrade_module
from pytest_kuberay.drive.upgrade import promoted_or_stalled
from tests.unit.timeline_builders import ACTIVE, status


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(upgrade_module.time, "monotonic", fake.monotonic)
    return fake


def running(st):
    return dataclasses.replace(st, pending=dataclasses.replace(st.pending, app_statuses={"echo": "RUNNING"}))


def test_a_stuck_step_ends_the_recording_after_the_stall(clock: Clock) -> None:
    check = promoted_or_stalled(60)(ACTIVE)
    stuck = running(status(100, 0, 0))
    assert check(stuck)
    clock.now = 59.0
    assert check(stuck)
    clock.now = 61.0
    assert check(stuck) == ""


def test_a_moving_upgrade_is_not_stopped(clock: Clock) -> None:
    check = promoted_or_stalled(60)(ACTIVE)
    for i, key in enumerate([(100, 20, 0), (100, 20, 20), (80, 20, 20), (80, 40, 40), (60, 40, 40)]):
        clock.now = i * 50.0
        assert check(running(status(*key)))


def test_a_starting_pending_cluster_is_not_a_stall(clock: Clock) -> None:
    check = promoted_or_stalled(60)(ACTIVE)
    for t in (0.0, 100.0, 200.0):
        clock.now = t
        assert check(status(100, 0, 0))
