"""The lifecycle invariants on hand-built recordings: the good story passes, each bug's story is caught."""

from __future__ import annotations

import dataclasses

from pytest_kuberay.observe.objects import ObjectSnapshot, RouteBackend
from pytest_kuberay.observe.rayservice_status import ClusterStatus, RayServiceStatus
from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.verdict.lifecycle import (
    active_apps_restored,
    active_cluster_kept,
    promoted_at_full_capacity,
    route_backends_exist,
    upgrade_progresses,
)
from pytest_kuberay.verdict.objects import ROLLBACK_TRIGGER
from tests.unit.timeline_builders import ACTIVE, PENDING, failed_snap, promoted, sample, snap, status, timeline

REPLACEMENT = "rs-c"


def with_route(s: Sample, clusters: tuple[str, ...], **weights: int) -> Sample:
    backends = tuple(RouteBackend(f"{c}-serve-svc", w) for c, w in weights.items())
    return dataclasses.replace(s, objects=ObjectSnapshot(backends, clusters, 1, {}))


def running(st: RayServiceStatus) -> RayServiceStatus:
    """The status with the pending cluster's apps RUNNING."""
    assert st.pending is not None
    return dataclasses.replace(st, pending=dataclasses.replace(st.pending, app_statuses={"echo": "RUNNING"}))


def stepping(keys: list[tuple[int, int, int]], every: float) -> Timeline:
    samples = [sample(i * every, running(status(*key)), snap(ACTIVE, "v1")) for i, key in enumerate(keys)]
    return timeline(*samples)


def test_an_upgrade_that_steps_progresses() -> None:
    assert upgrade_progresses(stepping([(100, 20, 0), (100, 20, 20), (80, 20, 20), (80, 40, 40)], 5.0), 60) == []


def test_b14_an_upgrade_stuck_at_its_first_step_is_caught() -> None:
    violations = upgrade_progresses(stepping([(100, 0, 0)] * 15, 5.0), 60)
    assert [v.invariant for v in violations] == ["upgrade_progresses"]
    assert "(100, 0, 0)" in violations[0].message and "65s" in violations[0].message


def test_the_pending_cluster_starting_is_not_a_stall() -> None:
    """Before the pending's apps run, the status may stay put for as long as the cluster takes to start."""
    samples = [sample(i * 10.0, status(100, 0, 0), snap(ACTIVE, "v1")) for i in range(12)]
    assert upgrade_progresses(timeline(*samples), 60) == []


def test_a_revert_that_keeps_the_original_cluster_passes() -> None:
    tl = timeline(sample(0.0, status(100, 0, 0)), sample(1.0, status(100, None)), sample(60.0, status(100, None)))
    tl.markers = {ROLLBACK_TRIGGER: 0.5}
    assert active_cluster_kept(tl, after=ROLLBACK_TRIGGER) == []


def test_b2_a_revert_that_replaces_the_active_cluster_is_caught() -> None:
    tl = timeline(sample(0.0, status(100, 0, 0)), sample(30.0, status(60, 40, 40)), sample(90.0, promoted()))
    tl.markers = {ROLLBACK_TRIGGER: 0.5}
    violations = active_cluster_kept(tl, after=ROLLBACK_TRIGGER)
    assert [(v.invariant, v.cluster) for v in violations] == [("active_cluster_kept", PENDING)]
    assert f"from {ACTIVE} to {PENDING}" in violations[0].message


def test_without_its_marker_active_cluster_kept_judges_nothing() -> None:
    tl = timeline(sample(0.0, status(100, 0, 0)), sample(90.0, promoted()))
    assert active_cluster_kept(tl, after=ROLLBACK_TRIGGER) == []
    assert active_cluster_kept(tl) != []


def test_a_route_to_existing_clusters_passes() -> None:
    tl = timeline(*(with_route(sample(t, status(100, 20, 20)), (ACTIVE, PENDING), **{ACTIVE: 80, PENDING: 20})
                    for t in (0.0, 5.0, 10.0)))
    assert [v for step in tl.steps for v in route_backends_exist(step)] == []


def test_b16_a_route_left_on_a_deleted_cluster_is_caught() -> None:
    """The active was deleted: the route still sends it all traffic while only the replacement exists."""
    replacement = RayServiceStatus(ClusterStatus(ACTIVE, 100, 100), ClusterStatus(REPLACEMENT, None, None))
    tl = timeline(*(with_route(sample(t, replacement), (REPLACEMENT,), **{ACTIVE: 100, REPLACEMENT: 0})
                    for t in (0.0, 2.0, 4.0, 6.0)))
    violations = [v for step in tl.steps for v in route_backends_exist(step)]
    assert [v.invariant for v in violations] == ["route_backends_exist"]
    assert f"{ACTIVE}-serve-svc (weight 100)" in violations[0].message


def test_a_zero_weight_backend_of_a_deleted_cluster_is_harmless() -> None:
    tl = timeline(*(with_route(sample(t, status(100, None)), (ACTIVE,), **{ACTIVE: 100, REPLACEMENT: 0})
                    for t in (0.0, 5.0, 10.0)))
    assert [v for step in tl.steps for v in route_backends_exist(step)] == []


def _promotion(pending_live_tc: float | None, seconds: float = 10.0):
    """Upgrading at (60, 40, 40), then promoted with the former pending at ``pending_live_tc``, for ``seconds``."""
    before = [sample(t, status(60, 40, 40), snap(ACTIVE, "v1", 60.0), snap(PENDING, "v2", 40.0))
              for t in (0.0, 0.5, 1.0)]
    after = [sample(1.5 + i * 0.5, promoted(), snap(PENDING, "v2", pending_live_tc))
             for i in range(int(seconds / 0.5))]
    return timeline(*before, *after)


def test_a_promoted_cluster_at_full_capacity_passes() -> None:
    for live in (None, 100.0):
        tl = _promotion(live)
        assert [v for step in tl.steps for v in promoted_at_full_capacity(step)] == [], live


def test_b20_a_cluster_promoted_at_its_partial_capacity_is_caught() -> None:
    tl = _promotion(40.0)
    violations = [v for step in tl.steps for v in promoted_at_full_capacity(step)]
    assert [(v.invariant, v.cluster, v.role) for v in violations] == [("promoted_at_full_capacity", PENDING, "active")]
    assert "target_capacity 40" in violations[0].message


def test_a_partial_capacity_right_at_promotion_is_within_a_reconcile() -> None:
    tl = _promotion(40.0, seconds=2.0)  # the operator puts 100 within one reconcile (2 s here) plus a sample
    assert [v for step in tl.steps for v in promoted_at_full_capacity(step)] == []


HEAD_DELETED = "delete-active-head"


def _head_restart(apps_missing_for: float, back: bool = True) -> Timeline:
    """The active head is deleted at t=2: its dashboard is down 10 s, then answers without apps for a while."""
    up = [sample(i * 0.5, status(80, 20, 20), snap(ACTIVE, "v1", 80), snap(PENDING, "v2", 20)) for i in range(5)]
    down = [sample(2.5 + i * 0.5, status(80, 20, 20), failed_snap(ACTIVE), snap(PENDING, "v2", 20))
            for i in range(20)]
    empty = [sample(12.5 + i * 0.5, status(80, 20, 20), snap(ACTIVE, None), snap(PENDING, "v2", 20))
             for i in range(int(apps_missing_for / 0.5))]
    t = 12.5 + apps_missing_for
    again = [sample(t + i * 0.5, status(60, 40, 40), snap(ACTIVE, "v1", 60), snap(PENDING, "v2", 40))
             for i in range(3)] if back else []
    tl = timeline(*up, *down, *empty, *again)
    tl.markers = {HEAD_DELETED: 2.0}
    return tl


def test_apps_redeployed_within_a_reconcile_of_the_head_answering_pass() -> None:
    assert active_apps_restored(_head_restart(3.0), after=HEAD_DELETED) == []


def test_b19_apps_missing_until_the_next_active_step_are_caught() -> None:
    violations = active_apps_restored(_head_restart(60.0), after=HEAD_DELETED)
    assert [(v.invariant, v.cluster, v.role, v.t) for v in violations] == [
        ("active_apps_restored", ACTIVE, "active", 12.5)]
    assert "until t=72.5s" in violations[0].message and "60s" in violations[0].message


def test_apps_still_missing_when_the_recording_ends_are_caught() -> None:
    violations = active_apps_restored(_head_restart(20.0, back=False), after=HEAD_DELETED)
    assert len(violations) == 1 and "still missing" in violations[0].message


def test_a_dashboard_that_is_down_is_not_judged_and_without_the_marker_nothing_is() -> None:
    tl = _head_restart(60.0)
    tl.markers = {}
    assert active_apps_restored(tl, after=HEAD_DELETED) == []
    down_only = _head_restart(0.0, back=False)  # the recording ends while the head is still down
    assert active_apps_restored(down_only, after=HEAD_DELETED) == []
