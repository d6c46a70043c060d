"""Traffic continuity: requests flow through the Gateway during the whole upgrade and never fail.

Requests go to the Gateway's listener (on the local provider, a loopback
address) at a fixed, bounded rate. Answers name the Serve config version that
served them, so they must move from the old version to the new one as the
HTTPRoute weights move.
"""

from __future__ import annotations

from pytest_kuberay.verdict.traffic import TRAFFIC_INVARIANTS


def test_requests_never_fail_and_follow_the_route_weights(rayservice, upgrade):
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", traffic=True)
    answered = [r.version for r in timeline.requests if r.ok]
    assert len(timeline.requests) >= 50, f"only {len(timeline.requests)} requests were sent during the upgrade"
    timeline.assert_each_step(*TRAFFIC_INVARIANTS)
    assert answered[0] == "v1" and answered[-1] == "v2", f"answers went {answered[0]} -> {answered[-1]}"
