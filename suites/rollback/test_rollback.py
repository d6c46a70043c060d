"""Rollback A -> B -> A mid-upgrade: the spec is reverted while the pending cluster has traffic.

Reverting must roll back to the original cluster: it stays active, its Serve config never
changes, capacity and traffic return to it, the pending cluster keeps its own config until
it goes away, and no third cluster is made. Before v1.6.0 there is no rollback at all: the
operator abandons the pending cluster for a new one (bug ``abandoned-pending``); v1.6.x
redeploys the pending cluster with the reverted config (``rollback-pending-config``).
"""

from __future__ import annotations

import pytest

from pytest_kuberay import (
    OBJECT_INVARIANTS,
    ROLLBACK_TRIGGER,
    TriggerOnce,
    active_config_frozen,
    pending_config_frozen_during_rollback,
    requests_succeed,
    serving,
)


class Revert:
    """Re-applies the original spec once the pending cluster has traffic; remembers that pending cluster."""

    def __init__(self, rayservice):
        self.pending = None
        original = rayservice.manifest
        self.trigger = TriggerOnce(ROLLBACK_TRIGGER, self._when, lambda: rayservice.apply(original))

    def _when(self, sample) -> bool:
        if sample.key is None or not sample.pending_cluster or sample.key[2] <= 0:
            return False
        self.pending = sample.pending_cluster
        return True


def rolled_back_or_abandoned(revert: Revert):
    """Done when rolled back to the original cluster, or as soon as a third cluster shows (judged after)."""
    def until(initial: str):
        def check(status) -> str:
            if revert.trigger.fired_at is None:
                return "the spec has not been reverted yet (the upgrade must get traffic onto the pending first)"
            if status.pending is not None and status.pending.cluster != revert.pending:
                return ""  # a third cluster: no rollback; the invariants say what went wrong
            if status.active is None or status.active.cluster != initial:
                return "the original cluster is no longer active"
            if status.pending is not None:
                return "the pending cluster still exists"
            if status.conditions.get("RollbackInProgress") == "True":
                return "RollbackInProgress is still True"
            return serving(status)

        return check

    return until


@pytest.mark.kuberay_bug("abandoned-pending")
@pytest.mark.kuberay_bug("rollback-pending-config")
def test_rollback_returns_to_the_original_cluster(rayservice, upgrade):
    initial = rayservice.status().active.cluster
    revert = Revert(rayservice)
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", triggers=[revert.trigger],
                       until=rolled_back_or_abandoned(revert), until_description="rollback to the original cluster")
    timeline.assert_each_step(active_config_frozen, pending_config_frozen_during_rollback, *OBJECT_INVARIANTS,
                              requests_succeed)
    assert {s.active_cluster for s in timeline.samples if s.active_cluster} == {initial}, "the active cluster changed"
    final = timeline.samples[-1].status
    assert final is not None and final.step_key == (100, 0, 0)
