"""Invariants over the requests sent through the Gateway during an upgrade.

No request may fail, and the answers must follow the HTTPRoute weights: only
old versions while the pending cluster gets no traffic, only new ones once it
gets all of it (after the gateway has had time to reprogram).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pytest_kuberay.observe.timeline import Step, Timeline
from pytest_kuberay.verdict.invariants import Violation

__all__ = ["TRAFFIC_INVARIANTS", "answer_versions", "requests_recover", "requests_succeed", "traffic_follows_weights"]

GATEWAY_PROGRAMMING_SECONDS = 2.0  # Traefik applies a changed HTTPRoute within about a second


def requests_succeed(step: Step) -> list[Violation]:
    """Every request sent during the step succeeded (a 2xx, naming a version when its parser requires one)."""
    failed = [r for r in step.requests if not r.ok]
    if not failed:
        return []
    first = failed[0]
    return [Violation("requests_succeed", step.label(), None,
                      f"{len(failed)} of {len(step.requests)} requests through the Gateway failed; first at "
                      f"t={first.t:.1f}s on {first.route}: {first.error}", t=first.t)]


def requests_recover(timeline: Timeline, after: str | None = None) -> list[Violation]:
    """Requests through the Gateway that start failing stop failing within the time the operator needs to react.

    A cluster lost mid-upgrade (its pods or the RayCluster itself) fails its share of requests
    until the operator routes around it; that takes one reconcile plus the Gateway's reprogramming.
    Failures less than that apart are one outage; an outage that lasts longer is a violation (B18:
    upstream keeps the lost pending cluster's weight until it is back, a minute or more).
    ``after`` names a marker (the disruption) before which nothing is judged.
    """
    grace = timeline.reconcile_seconds + GATEWAY_PROGRAMMING_SECONDS + timeline.interval
    if after is not None and after not in timeline.markers:
        return []
    since = timeline.markers.get(after, 0.0) if after else 0.0
    failed = [r for r in timeline.requests if not r.ok and r.t >= since]
    outages: list[list[Any]] = []
    for request in failed:
        if outages and request.t - outages[-1][-1].t <= grace:
            outages[-1].append(request)
        else:
            outages.append([request])
    for outage in outages:
        first, last = outage[0], outage[-1]
        if last.t - first.t <= grace:
            continue
        sent = sum(1 for r in timeline.requests if first.t <= r.t <= last.t)
        return [Violation("requests_recover", f"t={first.t:.1f}s", None,
                          f"requests through the Gateway kept failing for {last.t - first.t:.0f}s (t={first.t:.1f}s "
                          f"to t={last.t:.1f}s), {len(outage)} of {sent} sent meanwhile; longer than the "
                          f"{grace:.1f}s the operator needs to route around a lost cluster. First: {first.error}",
                          t=first.t)]
    return []


def answer_versions(timeline: Timeline, phase: str) -> set[str]:
    """The versions answers named during a phase: ``before`` the upgrade (old) or once ``promoted`` (new)."""
    return {r.version for s in timeline.steps if s.phase == phase for r in s.requests if r.ok and r.version}


def traffic_follows_weights(step: Step) -> list[Violation]:
    """With pending traffic 0 every answer is an old version; with 100, every answer is a new one.

    Old and new versions are what the answers named before the upgrade and after promotion
    (whatever the parser reads: the echo app's ``version``, a user's header). Without a
    parser, or with versions the same before and after, there is nothing to tell apart.
    """
    if step.phase != "upgrading":
        return []
    _, _, traffic = step.key
    if traffic not in (0, 100):
        return []
    old, new = answer_versions(step.timeline, "before"), answer_versions(step.timeline, "promoted")
    if not old or not new or old == new:
        return []
    expected = old if traffic == 0 else new
    settled = [r for r in step.requests if r.ok and r.version and r.t - step.start >= GATEWAY_PROGRAMMING_SECONDS]
    wrong = [r for r in settled if r.version not in expected]
    if not wrong:
        return []
    seen = Counter(r.version for r in settled)
    return [Violation("traffic_follows_weights", step.label(), step.pending_cluster,
                      f"pending traffic is {traffic}% but {len(wrong)} of {len(settled)} answers came from version(s) "
                      f"{sorted({str(r.version) for r in wrong})} (expected {sorted(expected)}; seen {dict(seen)})",
                      t=wrong[0].t)]


TRAFFIC_INVARIANTS = (requests_succeed, traffic_follows_weights)
