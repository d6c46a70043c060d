"""Upgrade options that can never finish are refused when applied, not accepted and left stuck.

Each test deploys the echo RayService, then applies an upgrade (the worker CPU changes)
with one invalid option, and records until the operator either refuses it (a
ValidationFailed condition, an InvalidRayServiceSpec event) or starts the upgrade. A zero
step that is accepted anyway is then watched: the upgrade it started must still move.
"""

from __future__ import annotations

import copy

import pytest

from pytest_kuberay import (
    InvariantViolationError,
    invalid_options_rejected,
    options_decided,
    promoted_or_stalled,
    record_for,
    upgrade_progresses,
)

DECISION_SECONDS = 60
#: Steps come every intervalSeconds (5 s for the echo RayService) plus a reconcile; a minute without one is stuck.
STALL_SECONDS = 60
#: Room for the pending cluster to start (about a minute here) and then to stall or step to the end.
WATCH_SECONDS = 300
#: When the zero step was seen accepted (the first pending cluster), for the stall's signature.
ZERO_STEP_ACCEPTED = "zero-step-accepted"


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


def _refused_promoted_or_stalled(initial_active: str):
    """Stop at a refusal, at promotion, or once the status has not moved for STALL_SECONDS with the apps RUNNING."""
    refused_or_started = options_decided()
    promoted_or_stuck = promoted_or_stalled(STALL_SECONDS + 5)(initial_active)

    def until(sample) -> bool:
        if sample.status is None:
            return False
        if sample.pending_cluster is None and refused_or_started(sample):
            return True  # refused
        return not promoted_or_stuck(sample.status)

    return until


@pytest.mark.kuberay_bug("zero-step")
def test_a_zero_step_upgrade_that_is_accepted_still_moves(rayservice):
    """Refusing a zero step passes; accepting it is judged by what it starts: an upgrade that never moves."""
    initial = rayservice.status().active.cluster
    timeline = record_for(rayservice, WATCH_SECONDS, apply=_upgrade_with(rayservice, stepSizePercent=0),
                          until=_refused_promoted_or_stalled(initial))
    accepted = next((s.t for s in timeline.samples if s.pending_cluster is not None), None)
    if accepted is None:  # refused: pass; neither refused nor acted on: that is a violation too
        InvariantViolationError.raise_if(invalid_options_rejected(timeline, "zero-step"), timeline)
        return
    timeline.markers[ZERO_STEP_ACCEPTED] = accepted
    InvariantViolationError.raise_if(upgrade_progresses(timeline, STALL_SECONDS), timeline)
