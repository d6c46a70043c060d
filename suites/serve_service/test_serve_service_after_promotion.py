"""After an incremental upgrade's promotion, the RayService's own Services must keep serving: they select the new
cluster.

Clients inside the cluster reach a RayService through its own Services as well as through the
Gateway: with the incremental strategy that is ``<rayservice>-head-svc`` (KubeRay makes no
``<rayservice>-serve-svc`` then; the Gateway routes to each cluster's own). Upstream moves their
selector only in a reconcile that finds the new active cluster's Serve apps all RUNNING (bug
#5148). When they are not RUNNING at promotion, the Service keeps selecting the old cluster, and
once that is deleted (``rayClusterDeletionDelaySeconds`` later) it has no endpoints at all, while
the Gateway still answers.

The test makes the new cluster's apps leave RUNNING right at the last traffic step, as a Serve
config change meeting a slow model load would. The upgrade waits with the new cluster at full
capacity and no traffic (an interval of an hour). Then one spec shortens the interval and gives
the echo app's Gate a long hold. In the reconcile that sees it, the operator reads the pending
apps' status (RUNNING), pushes the new config (the app goes DEPLOYING for the hold) and moves all
the traffic on the readiness it read before the push; the next reconcile promotes the new cluster.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import (
    InvariantViolationError,
    TriggerOnce,
    promoted_for,
    serve_service_keeps_endpoints,
)

from .gated_specs import gate_hold, gated_upgrade, released

#: The marker of the second spec on the timeline.
RELEASE = "release-with-gate-hold"
#: Long enough that no traffic moves before the test releases it.
HOLD_INTERVAL_SECONDS = 3600
#: The old cluster goes this long after promotion; the bug leaves the Service without endpoints from then on.
DELETION_DELAY_SECONDS = 5
#: How long the Gate takes to apply its new config, the new cluster's app DEPLOYING meanwhile: with the
#: bug, the Service has no endpoints from the old cluster's deletion until then, for far longer than a
#: reconcile. ``promoted_for`` records until the apps are RUNNING again, so the Service's return is seen too.
GATE_HOLD_SECONDS = 60
#: At least this long is recorded after promotion: the old cluster's deletion and well over a reconcile more.
AFTER_PROMOTION_SECONDS = DELETION_DELAY_SECONDS + 30
#: The pending cluster is released only once seen RUNNING at full capacity for longer than a reconcile,
#: so the operator's own last read of it says RUNNING too.
HELD_FOR_SECONDS = 5.0


def _full_and_running(sample) -> bool:
    """The pending cluster at full capacity without traffic, its apps RUNNING in the status and live."""
    if sample.key != (100, 100, 0) or sample.pending_cluster is None:
        return False
    statuses = sample.status.pending.app_statuses
    snap = sample.snapshots.get(sample.pending_cluster)
    return (bool(statuses) and all(s == "RUNNING" for s in statuses.values())
            and snap is not None and snap.ok and bool(snap.apps)
            and all(app.status == "RUNNING" for app in snap.apps.values())
            and snap.target_capacity in (None, 100))  # null is full capacity too


def pending_held(held_for: float):
    """A ``TriggerOnce`` condition: the pending cluster has stayed full and RUNNING for ``held_for`` seconds."""
    since: list[float] = []

    def when(sample) -> bool:
        if not _full_and_running(sample):
            since.clear()
            return False
        since[:1] = since[:1] or [sample.t]
        return sample.t - since[0] >= held_for

    return when


def traffic_moved_before_ready(timeline) -> str | None:
    """How the new cluster got all the traffic while its apps were not RUNNING, or None if it did not.

    Read from its live Serve state at the first sample in which it has all the traffic (as the
    pending cluster at 100 %, or promoted), or within a reconcile after it if that read failed.
    """
    new = timeline.first_pending
    moved = next((s for s in timeline.samples if new is not None and s.key is not None
                  and ((s.pending_cluster == new and s.key[2] == 100) or s.active_cluster == new)), None)
    if moved is None:
        return None
    for sample in timeline.samples:
        snap = sample.snapshots.get(new)
        if sample.t < moved.t or not (snap and snap.ok and snap.apps):
            continue
        if sample.t - moved.t > timeline.reconcile_seconds:
            return None
        not_running = {name: app.status for name, app in snap.apps.items() if app.status != "RUNNING"}
        if not not_running:
            return None
        holds = {name: gate_hold(app.deployed_app_config) for name, app in snap.apps.items()}
        return (f"{new} had all the traffic at t={moved.t:.1f}s with its apps {not_running} "
                f"(Gate hold {holds}, seen at t={sample.t:.1f}s)")
    return None


@pytest.mark.kuberay_bug("5148")
def test_the_serve_service_follows_a_promotion_whose_apps_are_not_running_yet(rayservice_factory, upgrade):
    rayservice = rayservice_factory(max_surge_percent=100, step_size_percent=100,
                                    interval_seconds=HOLD_INTERVAL_SECONDS)
    release = TriggerOnce(RELEASE, pending_held(HELD_FOR_SECONDS),
                          lambda: rayservice.apply(released(rayservice.manifest, GATE_HOLD_SECONDS)))
    timeline = upgrade(rayservice, to=gated_upgrade(DELETION_DELAY_SECONDS), triggers=[release],
                       until=promoted_for(AFTER_PROMOTION_SECONDS),
                       until_description=f"promotion, then {AFTER_PROMOTION_SECONDS}s more")
    watched = [s for s in timeline.samples if s.objects is not None and s.objects.ok
               and s.objects.stable_service_endpoints()]
    assert watched, "no sample saw the RayService's own serve or head Service: nothing to judge"
    violations = [v for step in timeline.steps for v in serve_service_keeps_endpoints(step)]
    InvariantViolationError.raise_if(violations, timeline)
    assert timeline.steps[-1].phase == "promoted", f"the recording ends in phase {timeline.steps[-1].phase}"
    if traffic_moved_before_ready(timeline) is None:
        # the Services were judged only after a promotion with the apps RUNNING, which says nothing of #5148
        pytest.skip("the new cluster's apps were RUNNING again when it got all the traffic: the operator did not "
                    "move the traffic on a readiness read before its config push, so this run could not show "
                    "whether the RayService's own Services follow a promotion whose apps are not RUNNING")
