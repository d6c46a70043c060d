"""One recorded upgrade per (KubeRay version, scenario), judged by several tests.

An incremental upgrade takes minutes; the config-isolation, capacity-sequence and traffic
tests each judge the same recorded upgrade with their own invariants, so a version costs
one upgrade per scenario instead of one per test. The scenarios are two maxSurge/stepSize
shapes of the echo app (below 50, where bug 4189 shows), or the user's own RayService
pair when ``--kuberay-rayservice`` and ``--kuberay-upgrade-to`` are given.
"""

from __future__ import annotations

import pytest

from pytest_kuberay import UpgradeScenario, recorded_upgrade_fixture, user_scenarios

INTERVAL_SECONDS = 5
SHAPES = [UpgradeScenario("surge20-step20", 20, 20, INTERVAL_SECONDS),
          UpgradeScenario("surge25-step10", 25, 10, INTERVAL_SECONDS)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "upgrade_scenario" in metafunc.fixturenames:
        scenarios = user_scenarios(metafunc.config) or SHAPES
        metafunc.parametrize("upgrade_scenario", scenarios, ids=[s.id for s in scenarios], scope="module")


recorded_upgrade, upgrade_record = recorded_upgrade_fixture()
