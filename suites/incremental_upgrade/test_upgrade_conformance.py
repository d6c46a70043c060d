"""Conformance of one incremental upgrade, per KubeRay version and scenario.

Each test judges the same recorded upgrade (see conftest.py). With the echo app, the worker
CPU and the Serve user_config change together, so a new cluster is created and the Serve
config changes from v1 to v2; with your own pair, whatever your manifests change.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import (
    CAPACITY_INVARIANTS,
    OBJECT_INVARIANTS,
    TRAFFIC_INVARIANTS,
    active_config_frozen,
    pending_runs_new_config,
    sequence_violations,
    traffic_interval_violations,
)


@pytest.mark.kuberay_bug("4189")
def test_active_cluster_keeps_old_serve_config(upgrade_record):
    """Until promotion the active cluster runs the config it had; the pending one runs the new config."""
    if upgrade_record.max_surge_percent >= 50:
        pytest.skip(f"maxSurge {upgrade_record.max_surge_percent}% >= 50: the active cluster's second step-down is "
                    "already capacity 0, so bug 4189 cannot show (use maxSurge < 50 to check it)")
    upgrade_record.timeline.assert_each_step(active_config_frozen, pending_runs_new_config)


def test_capacity_and_traffic_follow_the_expected_sequence(upgrade_record):
    """The step sequence in order, monotonic, within maxSurge, traffic <= capacity, intervals respected."""
    timeline = upgrade_record.timeline
    problems = sequence_violations(timeline) + traffic_interval_violations(timeline)
    assert not problems, "\n".join(str(p) for p in problems)
    timeline.assert_each_step(*CAPACITY_INVARIANTS)


def test_the_route_capacity_and_clusters_follow_the_status(upgrade_record):
    """The HTTPRoute carries the status's split, each cluster has capacity for its traffic, and one pending only."""
    upgrade_record.timeline.assert_each_step(*OBJECT_INVARIANTS)


def test_promotion_deletes_the_old_cluster(upgrade_record):
    assert upgrade_record.timeline.steps[-1].phase == "promoted"
    assert upgrade_record.old_cluster_deleted, f"old RayCluster {upgrade_record.old_cluster} still exists"


def test_traffic_never_fails_and_follows_the_route_weights(upgrade_record):
    """Requests flow through the Gateway the whole time; answers move from the old config to the new one."""
    timeline = upgrade_record.timeline
    assert len(timeline.requests) >= 50, f"only {len(timeline.requests)} requests were sent during the upgrade"
    timeline.assert_each_step(*TRAFFIC_INVARIANTS)
    if upgrade_record.scenario.is_echo:
        answered = [r.version for r in timeline.requests if r.ok]
        assert answered[:1] == ["v1"] and answered[-1:] == ["v2"], f"first answer {answered[:1]}, last {answered[-1:]}"
