"""Upgrade options that can never finish are refused when applied, not accepted and left stuck.

Each test deploys the echo RayService, then applies an upgrade (the worker CPU changes)
with one invalid option, and records until the operator either refuses it (a
ValidationFailed condition, an InvalidRayServiceSpec event) or starts the upgrade.
"""

from __future__ import annotations

import copy

import pytest

from pytest_kuberay import InvariantViolationError, invalid_options_rejected, options_decided, record_for

DECISION_SECONDS = 60


def _upgrade_with(deployed, **options):
    manifest = copy.deepcopy(deployed.manifest)
    spec = manifest["spec"]
    spec["upgradeStrategy"]["clusterUpgradeOptions"].update(options)
    for group in spec["rayClusterConfig"]["workerGroupSpecs"]:  # a cluster change: an upgrade, not in place
        for container in group["template"]["spec"]["containers"]:
            container.setdefault("env", []).append({"name": "PYTEST_KUBERAY_UPGRADE", "value": "options"})
    return manifest


def _judge(deployed, what, **options):
    timeline = record_for(deployed, DECISION_SECONDS, apply=_upgrade_with(deployed, **options),
                          until=options_decided())
    InvariantViolationError.raise_if(invalid_options_rejected(timeline, what), timeline)


@pytest.mark.kuberay_bug("4636")
def test_a_step_above_max_surge_is_refused(rayservice):
    _judge(rayservice, "step-above-surge", maxSurgePercent=20, stepSizePercent=50)


@pytest.mark.kuberay_bug("zero-step")
def test_a_zero_step_is_refused(rayservice):
    _judge(rayservice, "zero-step", stepSizePercent=0)
