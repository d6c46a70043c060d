"""Invariants over the requests sent through the Gateway during an upgrade.

No request may fail, and the answers must follow the HTTPRoute weights: only
the old version while the pending cluster gets no traffic, only the new one
once it gets all of it (after the gateway has had time to reprogram).
"""

from __future__ import annotations

from collections import Counter

from pytest_kuberay.observe.timeline import Step
from pytest_kuberay.verdict.invariants import Violation
from pytest_kuberay.workloads.serve_apps import echo_version

__all__ = ["TRAFFIC_INVARIANTS", "requests_succeed", "traffic_follows_weights"]

GATEWAY_PROGRAMMING_SECONDS = 2.0  # Traefik applies a changed HTTPRoute within about a second


def requests_succeed(step: Step) -> list[Violation]:
    """Every request sent during the step got a 200 with a version in it."""
    failed = [r for r in step.requests if not r.ok]
    if not failed:
        return []
    first = failed[0]
    return [Violation("requests_succeed", step.label(), None,
                      f"{len(failed)} of {len(step.requests)} requests through the Gateway failed; first at "
                      f"t={first.t:.1f}s: {first.error}", t=first.t)]


def traffic_follows_weights(step: Step) -> list[Violation]:
    """With pending traffic 0 every answer is the old version; with 100, every answer is the new one."""
    if step.phase != "upgrading" or step.plan is None:
        return []
    _, _, traffic = step.key
    if traffic not in (0, 100):
        return []
    old = {echo_version(app) for app in step.plan.old_apps.values()}
    new = {echo_version(app) for app in step.plan.new_apps.values()}
    expected = old if traffic == 0 else new
    settled = [r for r in step.requests if r.ok and r.t - step.start >= GATEWAY_PROGRAMMING_SECONDS]
    wrong = [r for r in settled if r.version not in expected]
    if not wrong:
        return []
    seen = Counter(r.version for r in settled)
    return [Violation("traffic_follows_weights", step.label(), step.pending_cluster,
                      f"pending traffic is {traffic}% but {len(wrong)} of {len(settled)} answers came from version(s) "
                      f"{sorted({r.version for r in wrong})} (expected {sorted(expected)}; seen {dict(seen)})",
                      t=wrong[0].t)]


TRAFFIC_INVARIANTS = (requests_succeed, traffic_follows_weights)
