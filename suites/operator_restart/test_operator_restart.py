"""Operator restart mid-upgrade (upstream issue 4717).

KubeRay keeps each cluster's last Serve config in memory. If the operator
restarts between two active step-downs, the active cluster's cache is empty and
the next step-down sends the spec's (new) config to it. The active cluster must
keep its old config whatever happens to the operator.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import TriggerOnce, active_config_frozen


@pytest.mark.kuberay_bug("4717")
def test_active_cluster_keeps_old_config_across_an_operator_restart(rayservice, upgrade, kuberay_operator):
    if not getattr(kuberay_operator, "restartable", True):
        pytest.skip("the operator was found on an existing cluster: pytest-kuberay never restarts what it did not "
                    "install")
    # after the first active step-down (100 -> 80) and before the second (80 -> 60)
    restart = TriggerOnce("operator-restart", lambda s: s.key is not None and s.key[0] == 80,
                          kuberay_operator.restart)
    timeline = upgrade(rayservice, cluster_change="worker-cpu", serve_change="user-config", traffic=False,
                       triggers=[restart])
    timeline.assert_each_step(active_config_frozen)
