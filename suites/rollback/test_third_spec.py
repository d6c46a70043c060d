"""A third spec arrives mid-upgrade (A -> B -> C, where C changes the cluster and the Serve config).

Whatever the operator does with B's pending cluster (abandon it, or roll back first), the active
cluster still runs A's cluster spec, so C's Serve config must never reach it: C's code may need
C's image or dependencies, and the active is about to take back all of the traffic. v1.7.0 lets
Serve-config updates through to the active during a rollback (upstream #4601 chose it), so the
active gets C's config with its rolled-back target_capacity (bug ``third-spec-active``).
"""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from pytest_kuberay import InvariantViolationError, TriggerOnce, active_config_frozen, traffic_split

#: The marker of the third spec on the timeline, which the bug's signature looks after.
THIRD_SPEC = "third-spec"
#: After a cluster for C shows up: time for the active's config to change if it is going to.
AFTER_THIRD_CLUSTER = 20.0
#: What the third spec's echo app answers with.
THIRD_VERSION = "v3"


def third_spec(manifest: dict) -> dict:
    """C: the upgrade's spec with another worker change (a new cluster) and another Serve config."""
    new = copy.deepcopy(manifest)
    spec = new["spec"]
    for group in spec["rayClusterConfig"]["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            container.setdefault("env", []).append({"name": "PYTEST_KUBERAY_THIRD_SPEC", "value": "c"})
    serve = yaml.safe_load(spec["serveConfigV2"])
    for app in serve["applications"]:
        for deployment in app.get("deployments", []):
            deployment.setdefault("user_config", {})["version"] = THIRD_VERSION
    spec["serveConfigV2"] = yaml.safe_dump(serve, sort_keys=False)
    return new


def until_a_third_cluster(trigger: TriggerOnce, pending: list[str]):
    """Record until C's cluster has been in the status for AFTER_THIRD_CLUSTER seconds."""
    seen: list[float] = []

    def until(initial: str):
        def check(status) -> str:
            if trigger.fired_at is None:
                return "the third spec has not been applied yet (the pending cluster must get traffic first)"
            clusters = set(status.clusters()) - {initial, *pending}
            if not clusters:
                return "no cluster for the third spec yet"
            if not seen:
                seen.append(time.monotonic())
            waited = time.monotonic() - seen[0]
            return "" if waited >= AFTER_THIRD_CLUSTER else f"the third spec's cluster showed {waited:.0f}s ago"

        return check

    return until


@pytest.mark.kuberay_bug("third-spec-active")
def test_a_third_spec_mid_upgrade_never_reaches_the_active_cluster(rayservice, upgrade, kuberay_version):
    if not kuberay_version.supports_rollback:
        pytest.skip("no rollback before v1.6.0: a third spec abandons the pending cluster (test_rollback's "
                    "abandoned-pending), and the active's config is then what bug 4189 decides")
    pending: list[str] = []
    trigger = TriggerOnce(THIRD_SPEC, traffic_split(pending), lambda: rayservice.apply(third_spec(rayservice.manifest)))
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", triggers=[trigger],
                       until=until_a_third_cluster(trigger, pending),
                       until_description="a cluster for the third spec, then 20 s more")
    InvariantViolationError.raise_if([v for step in timeline.steps for v in active_config_frozen(step)], timeline)
