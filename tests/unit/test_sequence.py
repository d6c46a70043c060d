"""The expected capacity/traffic sequence (docs/kuberay-facts.md §1) and the checks against it."""

from __future__ import annotations

from dataclasses import replace

from pytest_kuberay.verdict.sequence import expected_steps, sequence_violations, traffic_interval_violations
from tests.unit.timeline_builders import ACTIVE, PENDING, promoted, sample, snap, status, timeline

FACTS_20_20 = [
    (100, 0, 0), (100, 20, 0), (100, 20, 20), (80, 20, 20), (80, 40, 20), (80, 40, 40), (60, 40, 40),
    (60, 60, 40), (60, 60, 60), (40, 60, 60), (40, 80, 60), (40, 80, 80), (20, 80, 80), (20, 100, 80),
    (20, 100, 100), (0, 100, 100),
]


def test_expected_steps_match_facts_for_maxsurge_20() -> None:
    assert expected_steps(20, 20) == FACTS_20_20


def test_second_step_down_is_capacity_zero_when_maxsurge_is_50() -> None:
    """Why the suites keep maxSurge < 50: at 50 the second active step-down is already 0 (bug 4189 hides)."""
    downs = sorted({a for a, _, _ in expected_steps(50, 50)}, reverse=True)
    assert downs == [100, 50, 0]
    assert sorted({a for a, _, _ in expected_steps(25, 10)}, reverse=True) == [100, 75, 50, 25, 0]


def _timeline(keys, t_step=6.0, interval_seconds=5):
    samples = [sample(i * t_step, status(*key), snap(ACTIVE, "v1"), snap(PENDING, "v2")) for i, key in enumerate(keys)]
    samples.append(sample(len(keys) * t_step, promoted(), snap(PENDING, "v2")))
    tl = timeline(*samples)
    tl.plan = replace(tl.plan, interval_seconds=interval_seconds)
    return tl


def test_a_subsequence_with_momentary_steps_missing_passes() -> None:
    observed = [k for k in FACTS_20_20 if k not in ((60, 60, 60), (0, 100, 100))]
    assert sequence_violations(_timeline(observed)) == []


def test_out_of_order_or_missing_active_step_fails() -> None:
    swapped = FACTS_20_20[:]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert "is not next in the expected sequence" in sequence_violations(_timeline(swapped))[0].message
    no_sixty = [k for k in FACTS_20_20 if k[0] != 60]
    assert any("[60] were never observed" in v.message for v in sequence_violations(_timeline(no_sixty)))


def test_traffic_moving_faster_than_interval_is_flagged() -> None:
    assert traffic_interval_violations(_timeline(FACTS_20_20, t_step=6.0)) == []
    [first, *_] = traffic_interval_violations(_timeline(FACTS_20_20, t_step=1.0))
    assert "intervalSeconds is 5" in first.message


def _with_migration_stamps(tl, seconds_per_move: float):
    """Give each sample's pending status the operator's lastTrafficMigratedTime (one per traffic value)."""
    import datetime as dt

    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    samples = []
    for s in tl.samples:
        if s.status is not None and s.status.pending is not None:
            traffic = s.status.pending.traffic_routed_percent or 0
            stamp = (base + dt.timedelta(seconds=seconds_per_move * traffic / 20)).isoformat().replace("+00:00", "Z")
            pending = replace(s.status.pending, last_traffic_migrated_time=stamp)
            s = replace(s, status=replace(s.status, pending=pending))
        samples.append(s)
    out = timeline(*samples)
    out.plan = tl.plan
    return out


def test_traffic_interval_uses_the_operators_own_timestamps() -> None:
    """Seen 1 s apart (a slow status write), but migrated 6 s apart by the operator's clock: fine."""
    seen_fast = _timeline(FACTS_20_20, t_step=1.0)
    assert traffic_interval_violations(_with_migration_stamps(seen_fast, 6.0)) == []
    [first, *_] = traffic_interval_violations(_with_migration_stamps(seen_fast, 3.0))
    assert "(lastTrafficMigratedTime)" in first.message and "intervalSeconds is 5" in first.message
