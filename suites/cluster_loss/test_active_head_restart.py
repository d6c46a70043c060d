"""The active cluster's head pod restarts in the middle of an upgrade (an OOM kill, a node drained).

Without GCS fault tolerance the new head starts an empty Ray cluster: no Serve apps. The
HTTPRoute still sends the active cluster most of the requests, so the operator must deploy
its apps again as soon as its dashboard answers. Upstream skips the Serve config update of an
active cluster while an upgrade is in progress, so the apps come back only with the next
target_capacity step on that cluster (bug ``active-head-restart``): a whole intervalSeconds
and more with the active cluster's share of the traffic failing.
"""

from __future__ import annotations

import time

import pytest

from pytest_kuberay import InvariantViolationError, TriggerOnce, active_apps_restored, promoted_or_stalled

#: The marker of the head pod's delete on the timeline, which the bug's signature looks after.
DELETE_ACTIVE_HEAD = "delete-active-head"
#: The marker of the sample that settles it: the active cluster answers with its apps again, or has
#: answered without them for MISSING_EVIDENCE_SECONDS.
ACTIVE_APPS_SETTLED = "active-apps-settled"
#: Long enough that the head (up to a minute to start again here) is back, and its apps missing for
#: MISSING_EVIDENCE_SECONDS, well before the next step on the active cluster, which is what the apps
#: wait for when the bug is there.
INTERVAL_SECONDS = 150
#: Samples after that, so the plot shows it.
AFTER_RECOVERY_SECONDS = 5
#: The active cluster answering without its apps for this long (many reconciles) is evidence enough:
#: the recording stops there instead of waiting for the next step to bring them back.
MISSING_EVIDENCE_SECONDS = 45
#: No step for this long with the pending apps RUNNING is a stuck upgrade, not a slow one.
STALL_SECONDS = 3 * INTERVAL_SECONDS


def _active_stepped_down(sample) -> bool:
    """The active cluster has handed over its first capacity step: both clusters serve."""
    return sample.key is not None and sample.pending_cluster is not None and sample.key[0] < 100


def _apps_settled(active: str, apps: set[str], head_deleted: TriggerOnce, outcome: list[str]):
    """After the delete, once the active cluster's dashboard answered without its apps: the first sample with
    them all again ("back"), or one MISSING_EVIDENCE_SECONDS later still without them ("missing")."""
    missing_since: list[float] = []

    def when(sample) -> bool:
        if head_deleted.fired_at is None or sample.t < head_deleted.fired_at:
            return False
        snap = sample.snapshots.get(active)
        if snap is None or not snap.ok:
            return False
        if not apps <= set(snap.apps):
            missing_since[:1] = missing_since[:1] or [sample.t]
            if sample.t - missing_since[0] < MISSING_EVIDENCE_SECONDS:
                return False
            outcome.append("missing")
            return True
        if not missing_since:
            return False
        outcome.append("back")
        return True

    return when


@pytest.mark.kuberay_bug("active-head-restart")
def test_an_active_head_restart_mid_upgrade_gets_its_apps_back_at_once(rayservice_factory, upgrade):
    rayservice = rayservice_factory(interval_seconds=INTERVAL_SECONDS)
    status = rayservice.status()
    active = status.active.cluster
    apps = set(status.active.app_statuses)
    assert apps, f"the active cluster reports no Serve apps before the upgrade: {status}"
    head_deleted = TriggerOnce(DELETE_ACTIVE_HEAD, _active_stepped_down, lambda: rayservice.delete_head_pod(active))
    outcome: list[str] = []
    settled = TriggerOnce(ACTIVE_APPS_SETTLED, _apps_settled(active, apps, head_deleted, outcome), lambda: None)
    stalled = promoted_or_stalled(STALL_SECONDS)

    def until(initial_active: str):
        promoted_or_stuck = stalled(initial_active)
        settled_since: list[float] = []

        def check(status) -> str:
            if settled.fired_at is not None:
                settled_since[:1] = settled_since[:1] or [time.monotonic()]
                if time.monotonic() - settled_since[0] >= AFTER_RECOVERY_SECONDS:
                    return ""
            return promoted_or_stuck(status)

        return check

    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config",
                       triggers=[head_deleted, settled], until=until,
                       until_description="the active cluster's apps back after its head restarted, or promotion")
    head_deleted.check()
    InvariantViolationError.raise_if(active_apps_restored(timeline, after=DELETE_ACTIVE_HEAD), timeline)
    assert outcome == ["back"], (
        f"the active cluster's apps {sorted(apps)} were not back {MISSING_EVIDENCE_SECONDS}s after its dashboard "
        f"answered again, yet no violation was found: {outcome}")
