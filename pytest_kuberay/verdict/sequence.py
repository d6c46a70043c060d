"""The capacity and traffic sequence an incremental upgrade must follow (docs/kuberay-facts.md §1).

The operator acts only when the pending cluster's traffic has caught up with
its target capacity: then the active cluster steps down by maxSurge while the
two together exceed 100, otherwise the pending cluster steps up by maxSurge.
In between, traffic moves by stepSize, capped by the pending capacity.
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

from pytest_kuberay.observe.timeline import Step, StepKey, Timeline
from pytest_kuberay.verdict.invariants import Violation

__all__ = ["expected_steps", "sequence_violations", "traffic_interval_violations"]


def expected_steps(max_surge: int, step_size: int) -> list[StepKey]:
    """Every (active TC, pending TC, pending traffic) from (100, 0, 0) to (0, 100, 100), in order."""
    active, pending, traffic = 100, 0, 0
    steps: list[StepKey] = [(active, pending, traffic)]
    while not (active == 0 and traffic == 100):
        if pending == traffic:
            if active + pending > 100:
                active = max(0, active - max_surge)
            else:
                pending = min(100, pending + max_surge)
        else:
            traffic = min(100, traffic + step_size, pending)
        steps.append((active, pending, traffic))
    return steps


def _is_subsequence(observed: list[StepKey], expected: list[StepKey]) -> int | None:
    """None when ``observed`` appears in ``expected`` in order; else the index of the first step that does not."""
    position = 0
    for index, key in enumerate(observed):
        try:
            position = expected.index(key, position)
        except ValueError:
            return index
    return None


def sequence_violations(timeline: Timeline) -> list[Violation]:
    """Observed steps follow the expected sequence in order, every active step-down is seen, and promotion comes."""
    plan = timeline.plan
    if plan is None:
        return [Violation("capacity_sequence", "whole upgrade", None, "no upgrade plan was recorded")]
    expected = expected_steps(plan.max_surge_percent, plan.step_size_percent)
    upgrading = [s for s in timeline.steps if s.phase != "promoted"]
    observed = [s.key for s in upgrading]
    violations = []
    bad = _is_subsequence(observed, expected)
    if bad is not None:
        step = upgrading[bad]
        violations.append(Violation(
            "capacity_sequence", step.label(), None,
            f"step {step.key} is not next in the expected sequence (maxSurge {plan.max_surge_percent}, stepSize "
            f"{plan.step_size_percent}): expected one of the steps after {observed[bad - 1] if bad else 'start'} "
            f"in {expected}; observed {observed}"))
    # active step-downs last a whole traffic interval, so each must have been sampled (0 is followed by promotion)
    wanted_active = sorted({a for a, _, _ in expected if a > 0}, reverse=True)
    seen_active = sorted({a for a, _, _ in observed}, reverse=True)
    missing = [a for a in wanted_active if a not in seen_active]
    if missing:
        violations.append(Violation("capacity_sequence", "whole upgrade", None,
                                    f"active target capacities {missing} were never observed (saw {seen_active})"))
    if not timeline.steps or timeline.steps[-1].phase != "promoted":
        violations.append(Violation("capacity_sequence", "end of recording", None,
                                    "the pending cluster was never promoted"))
    return violations


def _migrated_at(step: Step) -> float | None:
    """The operator's own ``lastTrafficMigratedTime`` of the pending cluster in this step, as epoch seconds."""
    for sample in step.samples:
        pending = sample.status.pending if sample.status else None
        if pending is not None and pending.last_traffic_migrated_time:
            return datetime.fromisoformat(pending.last_traffic_migrated_time.replace("Z", "+00:00")).timestamp()
    return None


def traffic_interval_violations(timeline: Timeline) -> list[Violation]:
    """Traffic moves at most once per ``intervalSeconds``.

    Judged on the operator's own ``lastTrafficMigratedTime`` (1 s resolution), not on when we saw the
    status change: a status write can lag its reconcile by a second on a busy machine. Without that
    field, the sample times are used with two sampling intervals of slack.
    """
    plan = timeline.plan
    if plan is None or plan.interval_seconds <= 0:
        return []
    moves: list[Step] = []
    previous = None
    for step in timeline.steps:
        if step.phase != "upgrading":
            continue
        traffic = step.key[2]
        if previous is not None and traffic > previous:
            moves.append(step)
        previous = traffic
    violations = []
    for earlier, later in pairwise(moves):
        stamps = _migrated_at(earlier), _migrated_at(later)
        if stamps[0] is not None and stamps[1] is not None:
            gap, slack, source = stamps[1] - stamps[0], 1.0, "lastTrafficMigratedTime"
        else:
            gap, slack, source = later.start - earlier.start, 2 * timeline.interval, "observed"
        if gap < plan.interval_seconds - slack:
            violations.append(Violation(
                "traffic_interval", later.label(), None,
                f"traffic moved {gap:.1f}s ({source}) after the previous move ({earlier.label()}); "
                f"intervalSeconds is {plan.interval_seconds}", t=later.start))
    return violations
