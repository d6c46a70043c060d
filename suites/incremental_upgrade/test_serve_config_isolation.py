"""Serve-config isolation during NewClusterWithIncrementalUpgrade (upstream bug 4189).

While the upgrade moves capacity and traffic step by step, the active cluster
must keep serving the Serve config it had when the upgrade began, and the
pending cluster must run the new one. KubeRay v1.5.0 sends the new config to
the active cluster at its second step-down. maxSurge must stay below 50: with
larger steps the second step-down is already capacity 0 and the bug hides.
"""

from __future__ import annotations

import pytest

from pytest_kuberay.verdict.invariants import active_config_frozen, pending_runs_new_config


@pytest.mark.kuberay_bug("4189")
def test_active_cluster_keeps_old_serve_config(rayservice, upgrade):
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config")
    timeline.assert_each_step(active_config_frozen, pending_runs_new_config)
