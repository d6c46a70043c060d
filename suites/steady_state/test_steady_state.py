"""A RayService that nobody upgrades: the operator leaves its Gateway and HTTPRoute alone and does not panic.

No upgrade is needed for these bugs to show, so each test deploys, records for a while
and judges the recording: what the API server says the operator wrote, and what the
operator logged.
"""

from __future__ import annotations

import copy

import pytest

from pytest_kuberay import (
    InvariantViolationError,
    eventually,
    no_operator_panics,
    no_write_churn,
    operator_panics,
    record_for,
    serving,
)

#: Long enough for a dozen reconciles (the operator requeues a RayService every 2 s).
STEADY_SECONDS = 30


@pytest.mark.kuberay_bug("gateway-churn")
def test_the_gateway_is_not_rewritten_at_steady_state(rayservice):
    timeline = record_for(rayservice, STEADY_SECONDS)
    InvariantViolationError.raise_if(no_write_churn(timeline, resources=("gateways",)), timeline)


@pytest.mark.kuberay_bug("httproute-churn")
def test_the_httproute_is_not_rewritten_at_steady_state(rayservice):
    timeline = record_for(rayservice, STEADY_SECONDS)
    InvariantViolationError.raise_if(no_write_churn(timeline, resources=("httproutes",)), timeline)


@pytest.mark.kuberay_bug("unset-type-panic")
def test_an_upgrade_strategy_without_a_type_is_served_without_panics(rayservice_factory, kuberay_operator):
    """``upgradeStrategy`` with options but no ``type``: valid (the type is optional), so it must serve."""
    deployed = rayservice_factory()  # the echo RayService, serving
    untyped = copy.deepcopy(deployed.manifest)
    del untyped["spec"]["upgradeStrategy"]["type"]
    logs = kuberay_operator.log_paths
    panics_before = len(operator_panics(logs))
    timeline = record_for(deployed, 40, apply=untyped,
                          until=lambda s: len(operator_panics(logs)) > panics_before)
    InvariantViolationError.raise_if(
        no_operator_panics(logs, where="after removing upgradeStrategy.type", since=panics_before), timeline)
    eventually(deployed.status, serving, timeout=60, interval=1, description="the RayService still serving")
