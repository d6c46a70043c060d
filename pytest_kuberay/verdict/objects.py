"""Invariants on the objects the operator owns: capacity and route against traffic, clusters, rollback, churn.

Like the Serve-config invariants these are pure functions of a recording: a step (or a
steady-state timeline) in, violations out, each naming the step and what differed. They
read what :mod:`pytest_kuberay.observe.objects` sampled beside each status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_kuberay.observe.config_diff import config_diff
from pytest_kuberay.observe.serve_probe import config_fingerprint
from pytest_kuberay.observe.timeline import Sample, Step, Timeline
from pytest_kuberay.verdict.invariants import SKIP, Violation, lasting_violation, what_it_became

__all__ = [
    "OBJECT_INVARIANTS",
    "ROLLBACK_TRIGGER",
    "WRITE_RESOURCES",
    "capacity_covers_traffic",
    "no_extra_clusters",
    "no_operator_panics",
    "no_write_churn",
    "operator_panics",
    "pending_config_frozen_during_rollback",
    "route_matches_status",
    "serve_service_keeps_endpoints",
]

#: The trigger name a rollback test gives the revert of the spec (``TriggerOnce(ROLLBACK_TRIGGER, ...)``).
ROLLBACK_TRIGGER = "revert-spec"

#: The objects besides its clusters the operator writes (resource names, as the API server counts them).
WRITE_RESOURCES = ("gateways", "httproutes")


def capacity_covers_traffic(step: Step) -> list[Violation]:
    """Each cluster has the capacity for the traffic it gets: active TC >= 100 - pending traffic, pending TC >= it."""
    if step.phase != "upgrading":
        return []
    active, pending, traffic = step.key
    problems = []
    if active < 100 - traffic:
        problems.append(f"the active cluster gets {100 - traffic}% of the traffic with target capacity {active}%")
    if pending < traffic:
        problems.append(f"the pending cluster gets {traffic}% of the traffic with target capacity {pending}%")
    if not problems:
        return []
    return [Violation("capacity_covers_traffic", step.label(), None, "; ".join(problems), t=step.start)]


def _expected_weights(sample: Sample) -> dict[str, int] | None:
    status = sample.status
    if status is None or status.active is None:
        return None
    pending_traffic = (status.pending.traffic_routed_percent or 0) if status.pending else 0
    active_traffic = status.active.traffic_routed_percent
    if active_traffic is None or status.pending is None:
        active_traffic = 100 - pending_traffic
    weights = {status.active.cluster: active_traffic}
    if status.pending is not None:
        weights[status.pending.cluster] = pending_traffic
    return weights


def _route_problem(sample: Sample) -> str | None:
    objects, want = sample.objects, _expected_weights(sample)
    if objects is None or not objects.ok or objects.route is None or want is None:
        return None
    total = sum(1 if b.weight is None else b.weight for b in objects.route)
    got = objects.route_weights()
    backends = ", ".join(f"{b.service}={b.weight}" for b in objects.route) or "no backends"
    if total != 100:
        return f"HTTPRoute weights sum to {total}, not 100 ({backends})"
    wrong = {c: (got.get(c, 0), w) for c, w in want.items() if got.get(c, 0) != w}
    if wrong:
        return ("HTTPRoute weights differ from the status's trafficRoutedPercent: "
                + ", ".join(f"{c} has weight {g} but status {w}%" for c, (g, w) in wrong.items())
                + f" ({backends})")
    return None


def route_matches_status(step: Step) -> list[Violation]:
    """The HTTPRoute's weights sum to 100 and equal the status's traffic split, within one reconcile."""
    def judge(sample: Sample) -> object:
        if not sample.settled or sample.objects is None or not sample.objects.ok:
            return SKIP
        return _route_problem(sample)

    return lasting_violation("route_matches_status", step, judge)


def no_extra_clusters(step: Step) -> list[Violation]:
    """An upgrade creates one pending RayCluster, and a rollback none: any other cluster is a violation."""
    timeline = step.timeline
    first_seen = timeline.cluster_first_seen
    # the first new cluster is the upgrade's pending one even when no sampled status named it: a
    # rollback may drop it from the status between two samples (seen on v1.7.0 within a second)
    first_new = next((name for name in first_seen if name != timeline.initial_active), None)
    allowed = {timeline.initial_active, timeline.first_pending or first_new}
    return [Violation("no_extra_clusters", step.label(), name,
                      f"a RayCluster beyond the upgrade's one pending cluster appeared at t={t:.1f}s (clusters so far: "
                      f"{', '.join(n for n, seen in first_seen.items() if seen <= t)})", t=t, role="other")
            for name, t in first_seen.items() if name not in allowed and step.start <= t <= step.end]


def _config_at(timeline: Timeline, cluster: str, before: float) -> dict[str, dict[str, Any]] | None:
    """The cluster's deployed app configs in its last snapshot with apps before ``before``."""
    found = None
    for sample in timeline.samples:
        if sample.t >= before:
            break
        snap = sample.snapshots.get(cluster)
        if snap and snap.ok and snap.apps:
            found = {name: app.deployed_app_config or {} for name, app in snap.apps.items()}
    return found


def _first_rollback_change(timeline: Timeline) -> tuple[Sample, str, dict[str, Any], dict[str, Any] | None] | None:
    """The first sample after the revert where the pending cluster runs another config than at the revert."""
    reverted = timeline.markers.get(ROLLBACK_TRIGGER)
    pending = timeline.first_pending
    if reverted is None or pending is None:
        return None
    frozen = _config_at(timeline, pending, reverted)
    for sample in timeline.samples:
        snap = sample.snapshots.get(pending)
        if not frozen or sample.t < reverted or not (snap and snap.ok and snap.apps):
            continue
        for app, want in frozen.items():
            got = snap.apps.get(app)
            config = got.deployed_app_config if got else None
            if config_diff(want, config):
                return sample, app, want, config
    return None


def pending_config_frozen_during_rollback(step: Step) -> list[Violation]:
    """After the spec is reverted, the pending cluster keeps the config it had until it is gone (B3)."""
    found = _first_rollback_change(step.timeline)
    if found is None or not (step.start <= found[0].t <= step.end):
        return []
    sample, app, want, config = found
    reverted = step.timeline.markers[ROLLBACK_TRIGGER]
    traffic = sample.key[2] if sample.key else 0
    return [Violation(
        "pending_config_frozen_during_rollback", step.label(), step.timeline.first_pending,
        f"pending app {app!r} changed its config during the rollback (fingerprint {config_fingerprint(want)} -> "
        f"{config_fingerprint(config)}) at t={sample.t:.1f}s, {sample.t - reverted:.1f}s after the revert, while "
        f"it still had {traffic}% of the traffic", tuple(config_diff(want, config)), sample.t, "pending",
        what_it_became(step, app, config))]


def serve_service_keeps_endpoints(step: Step) -> list[Violation]:
    """After promotion the RayService's own Services keep ready endpoints (B15: they can lose them all).

    Judged on those that exist: ``<rayservice>-serve-svc`` and ``<rayservice>-head-svc`` (with the
    incremental strategy KubeRay makes only the head one). A sample in which neither exists says nothing.
    """
    if step.phase != "promoted":
        return []

    def judge(sample: Sample) -> object:
        objects = sample.objects
        if objects is None or not objects.ok:
            return SKIP
        counts = objects.stable_service_endpoints()
        if not counts:
            return SKIP
        empty = [kind for kind, count in counts.items() if count == 0]
        if not empty:
            return None
        return (f"the RayService's {' and '.join(empty)} Service{'s have' if len(empty) > 1 else ' has'} 0 ready "
                f"endpoints after promotion")

    return lasting_violation("serve_service_keeps_endpoints", step, judge)


def no_write_churn(timeline: Timeline, resources: Sequence[str] = WRITE_RESOURCES, allowed: int = 1
                   ) -> list[Violation]:
    """At steady state the operator does not rewrite the Gateway/HTTPRoute: at most ``allowed`` write each.

    Judged on a recording without an upgrade, from the API server's write counts before and
    after it (B6: the Gateway is updated on every reconcile; B7: the HTTPRoute). A timeline
    without counts (no access to ``/metrics``) cannot be judged: that is an error, not a pass.
    """
    missing = [r for r in resources if r not in timeline.writes]
    if missing:
        raise ValueError(f"no API server write counts for {', '.join(missing)} in this recording: record it with "
                         "record_for() as a user that may read /metrics")
    seconds = (timeline.samples[-1].t - timeline.samples[0].t) if timeline.samples else 0.0
    violations = []
    for resource in resources:
        before, after = timeline.writes[resource]
        writes = after - before
        if writes > allowed:
            violations.append(Violation(
                "no_write_churn", f"steady state of {seconds:.0f}s", None,
                f"the API server served {writes} writes on {resource} in {seconds:.0f}s with nothing to change "
                f"(one every {seconds / writes:.1f}s): the operator rewrites it on every reconcile",
                t=0.0, role=resource))
    return violations


def operator_panics(log_paths: Iterable[Path]) -> list[str]:
    """Lines of the operator's logs that report a panic (controller-runtime recovers and logs it)."""
    lines = []
    for path in log_paths:
        if path.is_file():
            lines += [line.strip() for line in path.read_text(errors="replace").splitlines()
                      if "panic" in line.lower()]
    return lines


def no_operator_panics(log_paths: Iterable[Path], where: str = "the run", since: int = 0) -> list[Violation]:
    """The operator never panics (B8: unset upgrade type; B16: a deleted active cluster).

    ``since``: how many panic lines were there before what is judged (``len(operator_panics(...))``).
    """
    lines = operator_panics(log_paths)[since:]
    if not lines:
        return []
    return [Violation("no_operator_panics", where, None,
                      f"the operator logged {len(lines)} panic line(s), the first: {lines[0][:300]}")]


#: What every upgrade recording is judged by, beside the Serve-config and capacity invariants.
OBJECT_INVARIANTS = (capacity_covers_traffic, route_matches_status, no_extra_clusters)
