"""The capacity and traffic sequence an incremental upgrade must follow (FACTS.md §1).

The operator acts only when the pending cluster's traffic has caught up with
its target capacity: then the active cluster steps down by maxSurge while the
two together exceed 100, otherwise the pending cluster steps up by maxSurge.
In between, traffic moves by stepSize, capped by the pending capacity.
"""

from __future__ import annotations

from itertools import pairwise

from pytest_kuberay.observe.timeline import StepKey, Timeline
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


def traffic_interval_violations(timeline: Timeline) -> list[Violation]:
    """Traffic moves at most once per ``intervalSeconds`` (minus two sampling intervals of timing slack)."""
    plan = timeline.plan
    if plan is None or plan.interval_seconds <= 0:
        return []
    slack = 2 * timeline.interval
    moves = []
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
        gap = later.start - earlier.start
        if gap < plan.interval_seconds - slack:
            violations.append(Violation(
                "traffic_interval", later.label(), None,
                f"traffic moved {gap:.1f}s after the previous move ({earlier.label()}); intervalSeconds is "
                f"{plan.interval_seconds}", t=later.start))
    return violations
