"""Upgrade options that can never finish must be refused, not acted on (B9: stepSize > maxSurge; B21: zero).

Judged on a recording that starts before the change: the operator either says no (a
``ValidationFailed`` condition reason, or an ``InvalidRayServiceSpec`` event) or starts an
upgrade that is capped or stuck from its first step.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.verdict.invariants import Violation

__all__ = ["REJECTION_EVENT", "invalid_options_rejected", "options_decided"]

REJECTION_EVENT = "InvalidRayServiceSpec"
CHANGE_MARKER = "change applied"


def _refused(sample: Sample, events_before: int) -> bool:
    reasons = sample.status.condition_reasons if sample.status else {}
    objects = sample.objects
    return "ValidationFailed" in reasons.values() or bool(
        objects and objects.ok and objects.events.get(REJECTION_EVENT, 0) > events_before)


def options_decided(events_before: int = 0) -> Callable[[Sample], bool]:
    """An ``until`` for :func:`pytest_kuberay.drive.watch.record_for`: stop once refused or acted on."""
    return lambda sample: _refused(sample, events_before) or sample.pending_cluster is not None


def invalid_options_rejected(timeline: Timeline, what: str) -> list[Violation]:
    """Refused after the change: pass. A pending cluster instead (the upgrade started): a violation.

    ``what`` names the invalid option (``step-above-surge``, ``zero-step``); it is the violation's role,
    which the known bugs' signatures tell apart.
    """
    changed = timeline.markers.get(CHANGE_MARKER, 0.0)
    before = [s for s in timeline.samples if s.t < changed]
    events_before = timeline.event_count(REJECTION_EVENT, before[-1]) if before else 0
    after = [s for s in timeline.samples if s.t >= changed]
    if any(_refused(s, events_before) for s in after):
        return []
    started = next((s for s in after if s.pending_cluster is not None), None)
    where = f"after the change at t={changed:.1f}s"
    if started is None:
        seconds = after[-1].t - changed if after else 0.0
        return [Violation("invalid_options_rejected", where, None,
                          f"upgrade options with {what} were neither refused nor acted on in {seconds:.0f}s",
                          t=changed, role=what)]
    keys = [s.key for s in after if s.key is not None and s.pending_cluster]
    most = max(keys, key=lambda k: (k[1], k[2])) if keys else None
    seen = f"; the furthest step seen was (active TC, pending TC, traffic) = {most}" if most else ""
    return [Violation("invalid_options_rejected", where, started.pending_cluster,
                      f"upgrade options with {what} were accepted: pending cluster {started.pending_cluster} was "
                      f"created at t={started.t:.1f}s instead of a ValidationFailed condition or an "
                      f"{REJECTION_EVENT} event{seen}", t=started.t, role=what)]
