"""Invariants on the RayService's clusters over a whole recording: who stays active, what the route points at,
and whether an upgrade keeps moving.

These catch the bugs where every single sample looks plausible but the story does not:
a revert that still replaces the active cluster (B2), a route left pointing at a cluster
that is gone (B16), an upgrade that silently stops stepping (B14).
"""

from __future__ import annotations

import dataclasses

from pytest_kuberay.observe.timeline import Sample, Step, Timeline
from pytest_kuberay.verdict.invariants import SKIP, Violation, lasting_violation

__all__ = [
    "active_apps_restored", "active_cluster_kept", "promoted_at_full_capacity", "route_backends_exist",
    "upgrade_progresses",
]


def active_cluster_kept(timeline: Timeline, after: str | None = None) -> list[Violation]:
    """The cluster active at the start stays active (after the marker ``after``, if given, e.g. a revert).

    A revert to the running spec must not replace the active cluster: its config is already
    the one asked for (B2, "fast rollback" building a second cluster from the reverted spec).
    """
    initial = timeline.initial_active
    since = timeline.markers.get(after, 0.0) if after else 0.0
    if after is not None and after not in timeline.markers:
        return []
    for sample in timeline.samples:
        if sample.t < since or sample.active_cluster in (None, initial):
            continue
        where = f", {sample.t - since:.1f}s after {after}" if after else ""
        return [Violation("active_cluster_kept", f"t={sample.t:.1f}s", sample.active_cluster,
                          f"the active cluster changed from {initial} to {sample.active_cluster} at t={sample.t:.1f}s"
                          f"{where}", t=sample.t, role="active")]
    return []


def _dangling(sample: Sample) -> object:
    objects = sample.objects
    if objects is None or not objects.ok or objects.route is None:
        return SKIP
    existing = set(objects.rayclusters)
    gone = [f"{b.service} (weight {b.weight})" for b in objects.route
            if b.cluster and b.cluster not in existing and (b.weight is None or b.weight > 0)]
    if not gone:
        return None
    return f"the HTTPRoute sends traffic to the Service of a RayCluster that does not exist: {', '.join(gone)}"


def route_backends_exist(step: Step) -> list[Violation]:
    """Every HTTPRoute backend with weight belongs to a RayCluster that exists, within one reconcile (B16)."""
    return lasting_violation("route_backends_exist", step, _dangling)


def promoted_at_full_capacity(step: Step) -> list[Violation]:
    """Once promoted, the active cluster serves at full capacity: its live ``target_capacity`` is 100 or unset.

    An upgrade hands its pending cluster capacity in steps; whatever ends it (promotion, or a
    switch to the NewCluster strategy midway, B20) must leave the cluster that now takes all the
    traffic with all of its replicas, within one reconcile.
    """
    if step.phase != "promoted":
        return []

    def judge(sample: Sample) -> object:
        snap = sample.snapshots.get(step.active_cluster or "")
        if snap is None or not snap.ok or not snap.apps or not sample.settled:
            return SKIP
        if snap.target_capacity is None or snap.target_capacity >= 100:
            return None
        return (f"the promoted cluster {step.active_cluster} serves at live target_capacity "
                f"{snap.target_capacity:g}, not 100")

    found = lasting_violation("promoted_at_full_capacity", step, judge)
    return [dataclasses.replace(v, cluster=step.active_cluster, role="active") for v in found]


def _pending_ready(sample: Sample) -> bool:
    pending = sample.status.pending if sample.status else None
    return bool(pending and pending.app_statuses and all(s == "RUNNING" for s in pending.app_statuses.values()))


def upgrade_progresses(timeline: Timeline, within: float) -> list[Violation]:
    """Once the pending cluster's apps run, the status takes a step at least every ``within`` seconds.

    An upgrade that stops moving is stuck for good (B14: a fractional ``target_capacity`` in the
    Serve config makes the operator skip the step's status update and recompute it forever).
    """
    last_change: float | None = None
    last_key = None
    for sample in timeline.samples:
        if sample.status is None or sample.pending_cluster is None:
            last_change = None
            continue
        if not _pending_ready(sample) and last_change is None:
            continue
        if last_change is None or sample.key != last_key:
            last_change, last_key = sample.t, sample.key
            continue
        if sample.t - last_change > within:
            return [Violation(
                "upgrade_progresses", f"step {last_key}", sample.pending_cluster,
                f"the upgrade has not moved from step {last_key} (active TC, pending TC, pending traffic) for "
                f"{sample.t - last_change:.0f}s since t={last_change:.1f}s, with the pending cluster's apps RUNNING",
                t=last_change, role="pending")]
    return []


def _missing_apps(sample: Sample, cluster: str, wanted: set[str]) -> set[str] | None:
    """The apps ``cluster`` answered without in ``sample`` (None: it did not answer, so nothing is known)."""
    snap = sample.snapshots.get(cluster)
    if snap is None or not snap.ok:
        return None
    return wanted - set(snap.apps)


def active_apps_restored(timeline: Timeline, after: str) -> list[Violation]:
    """Once the active cluster answers again after a disruption (marker ``after``), its Serve apps come back
    within one reconcile.

    A head pod that restarts without GCS fault tolerance comes back with no Serve apps; the
    operator must deploy them again as soon as the dashboard answers, not wait for the next
    target_capacity step on the active cluster (B19), while the HTTPRoute still sends that
    cluster its share of the requests.
    """
    if after not in timeline.markers:
        return []
    since = timeline.markers[after]
    wanted = set(timeline.baseline)
    cluster = timeline.initial_active
    if not wanted or cluster is None:
        return []
    grace = timeline.reconcile_seconds + 2 * timeline.interval
    outage_start: Sample | None = None
    for sample in timeline.samples:
        if sample.t < since or sample.active_cluster != cluster:
            continue
        missing = _missing_apps(sample, cluster, wanted)
        if missing is None:
            continue
        if missing and outage_start is None:
            outage_start = sample
        elif not missing and outage_start is not None:
            if sample.t - outage_start.t > grace:
                return [_apps_gone(outage_start, sample.t, wanted, grace, since, back=True)]
            outage_start = None
    last = timeline.samples[-1] if timeline.samples else None
    if outage_start is not None and last is not None and last.t - outage_start.t > grace:
        return [_apps_gone(outage_start, last.t, wanted, grace, since, back=False)]
    return []


def _apps_gone(start: Sample, until: float, wanted: set[str], grace: float, since: float, back: bool) -> Violation:
    cluster = start.active_cluster
    end = f"until t={until:.1f}s" if back else f"and were still missing when the recording ended at t={until:.1f}s"
    step = start.status.step_key if start.status else None
    return Violation("active_apps_restored", f"t={start.t:.1f}s", cluster,
                     f"the active cluster answered without its Serve apps {sorted(wanted)} from t={start.t:.1f}s "
                     f"({start.t - since:.1f}s after the disruption, status step {step}) {end}: "
                     f"{until - start.t:.0f}s, longer than the {grace:.1f}s one reconcile takes to deploy them",
                     t=start.t, role="active")
