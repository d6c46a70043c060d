"""The upgrade strategy is switched from incremental to NewCluster in the middle of an upgrade.

A user who wants an upgrade over with (or a GitOps tool that reverts a field) changes
``upgradeStrategy.type`` while traffic is split. Whatever the operator does then, the cluster it
promotes must serve at full capacity, and the HTTPRoute must not keep sending requests to a
cluster it deleted. Upstream promotes the pending cluster blue/green at the partial
``target_capacity`` it had reached, and stops reconciling the Gateway and HTTPRoute, so the old
cluster's share of the Gateway's requests goes to a Service that no longer exists.
"""

from __future__ import annotations

import copy

import pytest

from pytest_kuberay import (
    InvariantViolationError,
    TriggerOnce,
    promoted_at_full_capacity,
    promoted_for,
    route_backends_exist,
    traffic_split,
)

#: The marker of the switch on the timeline, which the bug's signature looks after.
SWITCH = "switch-to-newcluster"
#: Long enough after promotion for the old cluster to go (our manifest deletes it at once) and a few reconciles.
AFTER_PROMOTION = 20.0


@pytest.mark.kuberay_bug("strategy-switch")
def test_switching_to_newcluster_mid_upgrade_promotes_a_full_cluster_and_a_live_route(rayservice, upgrade):
    def switch() -> None:
        manifest = copy.deepcopy(rayservice.manifest)  # the upgrade's own spec, only the strategy changes
        manifest["spec"]["upgradeStrategy"]["type"] = "NewCluster"
        rayservice.apply(manifest)

    # once traffic is split: the pending cluster holds part of it at a partial target_capacity
    trigger = TriggerOnce(SWITCH, traffic_split(), switch)
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", triggers=[trigger],
                       until=promoted_for(AFTER_PROMOTION),
                       until_description=f"promotion, then {AFTER_PROMOTION:.0f}s more")
    violations = [v for step in timeline.steps for v in promoted_at_full_capacity(step) + route_backends_exist(step)]
    InvariantViolationError.raise_if(violations, timeline)
    assert timeline.steps[-1].phase == "promoted", f"the recording ends in phase {timeline.steps[-1].phase}"
