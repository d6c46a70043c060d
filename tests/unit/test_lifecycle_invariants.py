"""The lifecycle invariants on hand-built recordings: the good story passes, each bug's story is caught."""

from __future__ import annotations

import dataclasses

from pytest_kuberay.observe.objects import ObjectSnapshot, RouteBackend
from pytest_kuberay.observe.rayservice_status import ClusterStatus, RayServiceStatus
from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.verdict.lifecycle import (
    active_cluster_kept,
    promoted_at_full_capacity,
    route_backends_exist,
    upgrade_progresses,
)
from pytest_kuberay.verdict.objects import ROLLBACK_TRIGGER
from tests.unit.timeline_builders import ACTIVE, PENDING, promoted, sample, snap, status, timeline

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
