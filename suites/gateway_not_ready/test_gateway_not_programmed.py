"""An upgrade while the RayService's Gateway is not ready must not deploy the pending cluster at full size.

The operator moves capacity only once the Gateway and HTTPRoute are ready, so with a
Gateway nothing programs (here: a GatewayClass no controller serves) the upgrade waits.
While it waits, the pending cluster must run at ``target_capacity`` 0, within maxSurge.
Up to v1.6.2 the pending's capacity stays unset in that case and its apps are deployed
without ``target_capacity``, at 100% (bug ``pending-without-capacity``).
"""

from __future__ import annotations

import copy
import time

import pytest

from pytest_kuberay import InvariantViolationError, live_capacity_within_surge

#: A GatewayClass no controller in the cluster serves: the Gateway is never Programmed.
UNSERVED_GATEWAY_CLASS = "pytest-kuberay-unserved"
#: How long the pending cluster is watched once its apps run (several reconciles).
WATCH_DEPLOYED_SECONDS = 20
#: Give up waiting for the pending's apps after this (a new Ray cluster starts in about a minute here).
PENDING_START_SECONDS = 240


def upgraded(manifest):
    new = copy.deepcopy(manifest)
    for group in new["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            container.setdefault("env", []).append({"name": "PYTEST_KUBERAY_UPGRADE", "value": "gateway-not-ready"})
    return new


def pending_deployed_for(seconds: float, give_up: float):
    """Done ``seconds`` after the pending cluster's apps all run, or ``give_up`` seconds after it was named."""
    def until(initial_active: str):
        seen: dict[str, float] = {}

        def check(status) -> str:
            if status.pending is None:
                return "no pending cluster yet"
            now = time.monotonic()
            named = seen.setdefault("named", now)
            apps = status.pending.app_statuses
            if apps and all(s == "RUNNING" for s in apps.values()):
                running = seen.setdefault("running", now)
                if now - running > seconds:
                    return ""
                return f"the pending cluster's apps run; watching for {seconds}s"
            if now - named > give_up:
                return ""
            return f"the pending cluster's apps do not run yet ({apps or 'none'})"

        return check

    return until


@pytest.mark.kuberay_bug("pending-without-capacity")
def test_the_pending_cluster_stays_within_max_surge_while_the_gateway_is_not_ready(rayservice_factory, upgrade):
    deployed = rayservice_factory(gateway_class=UNSERVED_GATEWAY_CLASS)
    timeline = upgrade(deployed, to=upgraded, traffic=False,
                       until=pending_deployed_for(WATCH_DEPLOYED_SECONDS, PENDING_START_SECONDS),
                       until_description="the pending cluster deployed while the Gateway is not ready")
    violations = [v for step in timeline.steps for v in live_capacity_within_surge(step)]
    InvariantViolationError.raise_if(violations, timeline)
    pending = [s for s in timeline.samples if s.pending_cluster and s.snapshots.get(s.pending_cluster)
               and s.snapshots[s.pending_cluster].apps]
    assert pending, "the pending cluster's Serve apps were never seen: nothing was judged"
