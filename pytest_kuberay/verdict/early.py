"""Has a recording already decided the tests that share it? Then it can stop before promotion.

A test marked with a known bug that affects the version is a strict expected failure: the
first violation matching the bug's signature decides it, whatever the rest of the upgrade
does. When every test sharing a recording is such a test, recording on past that violation
only costs time (``make repro`` on v1.5.0 waits a minute for a promotion nobody judges).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pytest_kuberay.known_bugs import KnownBug
from pytest_kuberay.observe.timeline import Timeline
from pytest_kuberay.verdict.invariants import (
    CAPACITY_INVARIANTS,
    CONFIG_INVARIANTS,
    Invariant,
    live_capacity_within_surge,
)
from pytest_kuberay.verdict.lifecycle import promoted_at_full_capacity, route_backends_exist
from pytest_kuberay.verdict.objects import (
    OBJECT_INVARIANTS,
    pending_config_frozen_during_rollback,
    serve_service_keeps_endpoints,
)

__all__ = ["STEP_INVARIANTS", "bugs_confirmed"]

#: The invariants judged step by step, by the name a signature gives them.
STEP_INVARIANTS: dict[str, Invariant] = {
    invariant.__name__: invariant
    for invariant in (*CONFIG_INVARIANTS, *CAPACITY_INVARIANTS, *OBJECT_INVARIANTS, live_capacity_within_surge,
                      pending_config_frozen_during_rollback, serve_service_keeps_endpoints, route_backends_exist,
                      promoted_at_full_capacity)
}


def _shows(bug: KnownBug, timeline: Timeline) -> bool:
    invariants = [STEP_INVARIANTS[name] for name in dict.fromkeys(sig.invariant for sig in bug.signature)]
    return any(bug.matches(violation, timeline.markers)
               for step in timeline.steps for invariant in invariants for violation in invariant(step))


def bugs_confirmed(bugs: Sequence[KnownBug], times: int = 2) -> Callable[[Timeline], bool] | None:
    """A check that turns True once every bug shows in the recording, ``times`` checks in a row.

    ``None`` when some bug cannot be judged step by step (no signature, or an invariant over the
    whole recording such as ``no_write_churn``): such a recording must run to its end. Asking
    twice in a row keeps a violation that a late sample would revise (a status update racing
    the probe) from ending the recording.
    """
    if not bugs or any(not bug.signature or any(sig.invariant not in STEP_INVARIANTS for sig in bug.signature)
                       for bug in bugs):
        return None
    seen = [0]

    def check(timeline: Timeline) -> bool:
        seen[0] = seen[0] + 1 if all(_shows(bug, timeline) for bug in bugs) else 0
        return seen[0] >= times

    return check
