"""A Serve config whose ``target_capacity`` is not a whole number still upgrades to the end.

Ray Serve takes any number from 0 to 100 for ``target_capacity``; the operator steps it in
whole percents. Upstream's step de-duplication compares the cached config's value, cut to
an integer, with the step's goal, and returns before it records the step when they match
(issue 4777): with ``20.5`` and steps of 20 the upgrade never passes its first step.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from pytest_kuberay import InvariantViolationError, promoted_or_stalled, upgrade_progresses

#: Steps come every intervalSeconds (5 s for the echo RayService) plus a reconcile; a minute without one is stuck.
STALL_SECONDS = 60
FRACTIONAL_CAPACITY = 20.5


def with_fractional_target_capacity(manifest):
    """The upgrade: a worker env change (a new cluster) and ``target_capacity: 20.5`` in the Serve config."""
    new = copy.deepcopy(manifest)
    spec = new["spec"]
    serve = yaml.safe_load(spec["serveConfigV2"])
    serve["target_capacity"] = FRACTIONAL_CAPACITY
    spec["serveConfigV2"] = yaml.safe_dump(serve, sort_keys=False)
    for group in spec["rayClusterConfig"]["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            container.setdefault("env", []).append({"name": "PYTEST_KUBERAY_UPGRADE", "value": "fractional-tc"})
    return new


@pytest.mark.kuberay_bug("4777")
def test_a_fractional_target_capacity_does_not_stall_the_upgrade(rayservice, upgrade):
    timeline = upgrade(rayservice, to=with_fractional_target_capacity, until=promoted_or_stalled(STALL_SECONDS),
                       until_description=f"promotion, or {STALL_SECONDS}s without a step")
    InvariantViolationError.raise_if(upgrade_progresses(timeline, STALL_SECONDS), timeline)
    final = timeline.samples[-1].status
    assert final is not None and final.pending is None and final.active is not None, (
        f"the upgrade did not finish: {final}")
