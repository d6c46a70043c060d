"""The active RayCluster is deleted at steady state (a mistaken ``kubectl delete``, a cleanup job).

The RayService must recover: the operator makes a new cluster, serves from it and points
the HTTPRoute at it, without panicking. Upstream's code has no path for a missing active
cluster (bug ``active-deleted``): the replacement is treated as a pending cluster, and once
it is ready every reconcile dereferences the missing active and panics, while the route
still points at the deleted cluster's Service.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import (
    InvariantViolationError,
    no_operator_panics,
    operator_panics,
    record_for,
    route_backends_exist,
    serving,
)

#: The marker of the delete on the timeline, which the bug's signature looks after.
DELETE_ACTIVE = "delete-active"
#: A new Ray cluster starts in about a minute here; this leaves it room to start and to be promoted.
RECOVERY_SECONDS = 240
#: Panics keep coming once they start: a few reconciles past the first one is evidence enough.
AFTER_FIRST_PANIC_SECONDS = 20


@pytest.mark.kuberay_bug("active-deleted")
def test_a_deleted_active_cluster_is_replaced_and_served(rayservice, kuberay_operator):
    logs = kuberay_operator.log_paths
    panics_before = len(operator_panics(logs))
    deleted = rayservice.status().active.cluster
    first_panic: list[float] = []

    def delete_active(mark):
        mark(DELETE_ACTIVE)
        rayservice.delete_raycluster(deleted)

    def recovered_or_panicking(sample) -> bool:
        status, objects = sample.status, sample.objects
        if len(operator_panics(logs)) > panics_before:
            first_panic.append(sample.t)
            return sample.t - first_panic[0] > AFTER_FIRST_PANIC_SECONDS
        if status is None or objects is None or status.active is None or status.pending is not None:
            return False
        weighted = {b.cluster for b in objects.route or () if b.weight}
        return (status.active.cluster != deleted and status.active.cluster in objects.rayclusters
                and weighted == {status.active.cluster} and not serving(status))

    timeline = record_for(rayservice, RECOVERY_SECONDS, apply=delete_active, until=recovered_or_panicking)
    violations = no_operator_panics(logs, where=f"after deleting the active cluster {deleted}", since=panics_before)
    for step in timeline.steps:
        violations += route_backends_exist(step)
    InvariantViolationError.raise_if(violations, timeline)
    final = timeline.samples[-1]
    assert final.active_cluster not in (None, deleted), (
        f"no new active cluster {RECOVERY_SECONDS}s after deleting {deleted}: {final.status}")
    assert not serving(final.status), f"the RayService does not serve from its new cluster: {final.status}"
