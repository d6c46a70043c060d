"""Rollback A -> B -> A mid-upgrade (KubeRay v1.6.0+).

Reverting the spec while an incremental upgrade runs must roll back to the
original cluster: it is kept, its Serve config never changes, traffic and
capacity return to it, and the pending cluster goes away.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import TriggerOnce, active_config_frozen, requests_succeed, serving


def rolled_back_after(revert):
    return lambda initial: rolled_back(initial, revert)


def rolled_back(initial: str, revert):
    def check(status) -> str:
        if revert.fired_at is None:
            return "the spec has not been reverted yet (the upgrade must get under way first)"
        if status.active is None or status.active.cluster != initial:
            return "the original cluster is no longer active"
        if status.pending is not None:
            return "the pending cluster still exists"
        if status.conditions.get("RollbackInProgress") == "True":
            return "RollbackInProgress is still True"
        return serving(status)

    return check


@pytest.mark.kuberay_min_version("v1.6.0", reason="rollback of an incremental upgrade arrived in v1.6.0")
def test_rollback_returns_to_the_original_cluster(rayservice, upgrade):
    original = rayservice.manifest
    initial = rayservice.status().active.cluster
    revert = TriggerOnce("revert-spec", lambda s: s.key is not None and s.key[0] <= 80 and bool(s.pending_cluster),
                         lambda: rayservice.apply(original))
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", triggers=[revert],
                       until=rolled_back_after(revert), until_description="rollback to the original cluster")
    assert {s.active_cluster for s in timeline.samples if s.active_cluster} == {initial}, "the active cluster changed"
    timeline.assert_each_step(active_config_frozen, requests_succeed)
    final = timeline.samples[-1].status
    assert final is not None and final.step_key == (100, 0, 0)
