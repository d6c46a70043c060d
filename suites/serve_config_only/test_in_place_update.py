"""A Serve-config-only change is applied in place to the active cluster: no pending cluster, no upgrade."""

from __future__ import annotations

from pytest_kuberay import requests_succeed


def test_serve_config_only_change_is_applied_in_place(rayservice, upgrade):
    active = rayservice.status().active.cluster
    probe = rayservice.serve_probe(active)

    def new_config_live_or_pending_cluster(initial: str):
        def check(status) -> str:
            if status.pending is not None or status.active is None or status.active.cluster != initial:
                return ""  # stop: the assertions below say what went wrong
            snap = probe.snapshot()
            app = snap.apps.get("echo")
            version = app and app.deployed_app_config["deployments"][0]["user_config"]["version"]
            return "" if version == "v2" and app.status == "RUNNING" else f"active cluster runs {version}"

        return check

    try:
        timeline = upgrade(rayservice, cluster_change=None, serve_change="user-config",
                           until=new_config_live_or_pending_cluster,
                           until_description="the new Serve config RUNNING on the active cluster")
    finally:
        probe.close()
    assert not [s.t for s in timeline.samples if s.pending_cluster], "a pending cluster was created"
    assert {s.active_cluster for s in timeline.samples if s.active_cluster} == {active}
    changes = [c for c in timeline.config_changes if c.cluster == active]
    assert len(changes) == 1, f"expected one in-place config change on {active}, saw {changes}"
    assert [str(c) for c in changes[0].changes] == [
        "deployments[Echo].user_config.version: expected 'v1', got 'v2'"]
    timeline.assert_each_step(requests_succeed)
