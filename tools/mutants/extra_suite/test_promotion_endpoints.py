"""What no suite test judges yet: ``serve_service_keeps_endpoints`` after an incremental upgrade's promotion.

Kept beside the mutants (tools/mutants/) so the mutant of that invariant has a test to fail;
it uses only the plugin's public fixtures and invariants. After promotion the recording goes on
for ``AFTER_PROMOTION`` seconds, long enough for a loss of endpoints to outlast a reconcile.
"""

from __future__ import annotations

import time

from pytest_kuberay import serve_service_keeps_endpoints, serving

AFTER_PROMOTION = 15.0


def promoted_for(seconds: float):
    """An ``until`` for the ``upgrade`` fixture: promoted and serving, then ``seconds`` more."""
    def until(initial: str):
        since: list[float] = []

        def check(status) -> str:
            if status.active is None or status.active.cluster == initial or status.pending is not None:
                since.clear()
                return "not promoted yet"
            if not since:
                since.append(time.monotonic())
            waited = time.monotonic() - since[0]
            if waited < seconds:
                return f"promoted {waited:.0f}s ago, recording {seconds:.0f}s after promotion"
            return serving(status)

        return check

    return until


def test_the_serve_service_keeps_endpoints_after_promotion(rayservice, upgrade):
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config",
                       until=promoted_for(AFTER_PROMOTION), until_description="promotion, then 15 s more")
    assert timeline.steps[-1].phase == "promoted", f"the recording ends in phase {timeline.steps[-1].phase}"
    timeline.assert_each_step(serve_service_keeps_endpoints)
