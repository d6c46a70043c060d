"""The pending RayCluster is lost in the middle of an upgrade, while it already takes part of the traffic.

A node pool scaled away, a mistaken ``kubectl delete``, a quota that evicts the new cluster: the
upgrade's new cluster can go away at any step. Requests through the Gateway may fail for the
moment it takes the operator to notice, but it must then stop sending them to a cluster that is
not there (fail back to the active cluster, which still holds the capacity for them). Upstream
keeps the lost cluster's HTTPRoute weight and only "pauses" the migration until the operator has
made the cluster again and its apps run, so that share of the requests fails for a minute or more.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import InvariantViolationError, TriggerOnce, requests_recover, traffic_split

#: The marker of the delete on the timeline, which the bug's signature looks after.
DELETE_PENDING = "delete-pending"


@pytest.mark.kuberay_bug("no-failback")
def test_a_pending_cluster_lost_mid_upgrade_stops_getting_requests(rayservice, upgrade):
    pending: list[str] = []
    trigger = TriggerOnce(DELETE_PENDING, traffic_split(pending), lambda: rayservice.delete_raycluster(pending[0]))
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", triggers=[trigger])
    InvariantViolationError.raise_if(requests_recover(timeline, after=DELETE_PENDING), timeline)
    final = timeline.samples[-1].status
    assert final is not None and final.pending is None and final.active is not None, (
        f"the upgrade did not finish after the pending cluster was lost: {final}")
