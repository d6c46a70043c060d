"""What no suite test judges yet: ``serve_service_keeps_endpoints`` after an incremental upgrade's promotion.

Kept beside the mutants (tools/mutants/) so the mutant of that invariant has a test to fail;
it uses only the plugin's public fixtures and invariants. After promotion the recording goes on
for ``AFTER_PROMOTION`` seconds, long enough for a loss of endpoints to outlast a reconcile.
"""

from __future__ import annotations

from pytest_kuberay import promoted_for, serve_service_keeps_endpoints

AFTER_PROMOTION = 15.0


def test_the_serve_service_keeps_endpoints_after_promotion(rayservice, upgrade):
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config",
                       until=promoted_for(AFTER_PROMOTION), until_description="promotion, then 15 s more")
    assert timeline.steps[-1].phase == "promoted", f"the recording ends in phase {timeline.steps[-1].phase}"
    timeline.assert_each_step(serve_service_keeps_endpoints)
