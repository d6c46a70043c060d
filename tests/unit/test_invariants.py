"""Every invariant on a hand-built timeline where it holds and one where it is violated."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_kuberay.observe.config_diff import FieldChange
from pytest_kuberay.observe.timeline import Sample, Step, StepKey, Timeline
from pytest_kuberay.verdict.invariants import (
    CAPACITY_INVARIANTS,
    CONFIG_INVARIANTS,
    Invariant,
    Violation,
    active_config_frozen,
    capacity_within_surge,
    live_capacity_matches_status,
    live_capacity_within_surge,
    monotonic_progress,
    pending_runs_new_config,
    traffic_within_capacity,
)
from tests.unit.timeline_builders import (
    ACTIVE,
    PENDING,
    failed_snap,
    promoted,
    sample,
    snap,
    status,
    timeline,
)

VERSION_FIELD = "deployments[Echo].user_config.version"

# docs/kuberay-facts.md §1, maxSurge 20 / stepSize 20, up to the step where bug 4189 shows
GOOD_KEYS: list[StepKey] = [
    (100, 0, 0), (100, 20, 0), (100, 20, 20), (80, 20, 20), (80, 40, 20), (80, 40, 40), (60, 40, 40),
]


def at(t0: float, key: StepKey, *, active_v: str = "v1", pending_v: str | None = "v2",
       live: tuple[float | None, float | None] | None = None, n: int = 2) -> list[Sample]:
    """``n`` samples 0.5 s apart of one step; live capacities follow the status unless ``live`` says."""
    active_tc, pending_tc, traffic = key
    live_active, live_pending = live if live is not None else (active_tc, pending_tc)
    if key == (100, 0, 0):
        return [sample(t0 + 0.5 * i, status(), snap(ACTIVE, active_v)) for i in range(n)]
    return [
        sample(t0 + 0.5 * i, status(active_tc, pending_tc, traffic),
               snap(ACTIVE, active_v, live_active), snap(PENDING, pending_v, live_pending))
        for i in range(n)
    ]


def upgrade(keys: list[StepKey], steps: dict[StepKey, dict[str, Any]] | None = None) -> Timeline:
    """One step per key, a second apart, then promotion; ``steps[key]`` are keywords for ``at``."""
    samples: list[Sample] = []
    for i, key in enumerate(keys):
        samples += at(float(i), key, **(steps or {}).get(key, {}))
    samples.append(sample(float(len(keys)), promoted(), snap(PENDING, "v2")))
    return timeline(*samples, reconcile_seconds=0.0)


def violations(tl: Timeline, invariant: Invariant) -> list[Violation]:
    return [v for step in tl.steps for v in invariant(step)]


def step_with(tl: Timeline, key: StepKey) -> Step:
    return next(s for s in tl.steps if s.key == key and s.phase != "promoted")


ALL = (*CONFIG_INVARIANTS, *CAPACITY_INVARIANTS, live_capacity_within_surge)


@pytest.mark.parametrize("invariant", ALL, ids=lambda f: f.__name__)
def test_a_good_upgrade_violates_nothing(invariant: Invariant) -> None:
    tl = upgrade(GOOD_KEYS)
    assert [s.phase for s in tl.steps][-1] == "promoted"
    assert violations(tl, invariant) == []


def test_active_config_frozen() -> None:
    bug = {(60, 40, 40): {"active_v": "v2"}}
    tl = upgrade(GOOD_KEYS, steps=bug)
    found = violations(tl, active_config_frozen)
    step = step_with(tl, (60, 40, 40))
    assert [(v.invariant, v.step, v.cluster) for v in found] == [("active_config_frozen", step.label(), ACTIVE)]
    assert found[0].changes == (FieldChange(VERSION_FIELD, "v1", "v2"),)
    assert found[0].t == step.start
    assert "in 2 of 2 samples of this step" in found[0].message


def test_active_config_frozen_ignores_failed_and_empty_snapshots() -> None:
    samples = [*at(0, (100, 0, 0)), sample(1, status(80, 20, 20), failed_snap(ACTIVE), snap(PENDING, "v2")),
               sample(1.5, status(80, 20, 20), snap(ACTIVE, None), snap(PENDING, "v2"))]
    assert violations(timeline(*samples), active_config_frozen) == []


def test_pending_runs_new_config() -> None:
    tl = upgrade(GOOD_KEYS, steps={(80, 40, 20): {"pending_v": "v1"}})
    found = violations(tl, pending_runs_new_config)
    step = step_with(tl, (80, 40, 20))
    assert [(v.invariant, v.step, v.cluster) for v in found] == [("pending_runs_new_config", step.label(), PENDING)]
    assert found[0].changes == (FieldChange(VERSION_FIELD, "v2", "v1"),)


def test_pending_runs_new_config_needs_a_plan_and_skips_a_cluster_without_apps() -> None:
    wrong = at(0, (100, 20, 0), pending_v="v1")
    assert violations(timeline(*wrong, with_plan=False), pending_runs_new_config) == []
    assert violations(timeline(*at(0, (100, 20, 0), pending_v=None)), pending_runs_new_config) == []
    assert violations(timeline(*wrong), pending_runs_new_config) != []


def test_capacity_within_surge() -> None:
    assert violations(upgrade([(100, 0, 0), (100, 20, 0)]), capacity_within_surge) == []
    tl = upgrade([(100, 0, 0), (100, 40, 0)])
    found = violations(tl, capacity_within_surge)
    assert [(v.invariant, v.step, v.cluster) for v in found] == [
        ("capacity_within_surge", step_with(tl, (100, 40, 0)).label(), None)
    ]
    assert "active TC 100 + pending TC 40 = 140 exceeds 100 + maxSurge 20 = 120" in found[0].message


def test_traffic_within_capacity() -> None:
    tl = upgrade([(100, 0, 0), (100, 20, 0), (100, 20, 40)])
    found = violations(tl, traffic_within_capacity)
    assert [(v.invariant, v.step, v.cluster) for v in found] == [
        ("traffic_within_capacity", step_with(tl, (100, 20, 40)).label(), PENDING)
    ]
    assert "traffic routed 40% exceeds the pending target capacity 20%" in found[0].message


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ([(80, 20, 20), (100, 20, 20)], "active TC rose 80 -> 100"),
        ([(80, 40, 20), (80, 20, 20)], "pending TC fell 40 -> 20"),
        ([(80, 40, 40), (80, 40, 20)], "traffic fell 40 -> 20"),
    ],
)
def test_monotonic_progress(keys: list[StepKey], problem: str) -> None:
    tl = upgrade([(100, 0, 0), *keys])
    found = violations(tl, monotonic_progress)
    prev, step = tl.steps[1], tl.steps[2]
    assert [(v.invariant, v.step, v.cluster) for v in found] == [("monotonic_progress", step.label(), None)]
    assert problem in found[0].message
    assert f"(previous: {prev.label()})" in found[0].message


def test_live_capacity_may_disagree_with_the_status_for_one_reconcile_only() -> None:
    # grace = reconcile 0.5 s + interval 0.5 s; samples are 0.5 s apart
    brief = [*at(0, (100, 20, 0), n=2), *at(1, (80, 20, 20), live=(100, 20), n=3), *at(2.5, (80, 20, 20), n=2)]
    assert violations(timeline(*brief, reconcile_seconds=0.5), live_capacity_matches_status) == []
    lasting = [*at(0, (100, 20, 0), n=2), *at(1, (80, 20, 20), n=2), *at(2, (80, 20, 20), live=(100, 20), n=4)]
    tl = timeline(*lasting, reconcile_seconds=0.5)
    found = violations(tl, live_capacity_matches_status)
    assert [(v.invariant, v.step, v.cluster, v.t) for v in found] == [
        ("live_capacity_matches_status", tl.steps[1].label(), ACTIVE, 3.5)
    ]
    assert "active cluster's live target_capacity is 100.0 but its status says 80, for 1.5s (since t=2.0s)" in (
        found[0].message)


def test_live_capacity_skips_samples_taken_while_the_status_moved() -> None:
    """Status read, then probes: if the operator moved on in between, the sample may mix two steps."""
    lasting = [*at(0, (100, 20, 0), n=2), *at(1, (80, 20, 20), n=2), *at(2, (80, 20, 20), live=(100, 20), n=4)]
    unsettled = [dataclasses.replace(s, settled=False) if s.t >= 2 else s for s in lasting]
    assert violations(timeline(*unsettled, reconcile_seconds=0.5), live_capacity_matches_status) == []


def test_live_capacity_within_surge() -> None:
    tl = upgrade([(100, 0, 0), (100, 20, 0), (80, 20, 20)], steps={(80, 20, 20): {"live": (None, 40)}})
    found = violations(tl, live_capacity_within_surge)
    assert [(v.invariant, v.step, v.cluster) for v in found] == [
        ("live_capacity_within_surge", step_with(tl, (80, 20, 20)).label(), PENDING)
    ]
    assert "(null counts as 100) = 140 exceed 100 + maxSurge = 120" in found[0].message


def test_violation_text_names_step_cluster_and_field() -> None:
    tl = upgrade(GOOD_KEYS, steps={(60, 40, 40): {"active_v": "v2"}})
    text = str(violations(tl, active_config_frozen)[0])
    first, *rest = text.splitlines()
    assert first.startswith("[active_config_frozen] step #6 (60, 40, 40) at t=6.0s on cluster 'rs-a': ")
    assert rest == [f"    {VERSION_FIELD}: expected 'v1', got 'v2'"]


def test_violation_without_cluster_or_changes_is_one_line() -> None:
    text = str(Violation("capacity_within_surge", "step #1 (100, 40, 0) at t=1.0s", None, "too much"))
    assert text == "[capacity_within_surge] step #1 (100, 40, 0) at t=1.0s: too much"


def test_assert_each_step_reports_all_violations_first_first() -> None:
    tl = upgrade(GOOD_KEYS, steps={(60, 40, 40): {"active_v": "v2"}, (80, 40, 20): {"pending_v": "v1"}})
    tl.assert_each_step(capacity_within_surge)  # holds: no error
    with pytest.raises(AssertionError) as excinfo:
        tl.assert_each_step(*CONFIG_INVARIANTS)
    message = str(excinfo.value)
    assert message.startswith("2 invariant violation(s):")
    assert message.index("[pending_runs_new_config] step #4") < message.index("[active_config_frozen] step #6")


def test_assert_each_step_shows_five_and_counts_the_rest() -> None:
    tl = upgrade(GOOD_KEYS, steps={key: {"pending_v": "v1"} for key in GOOD_KEYS[1:]})
    with pytest.raises(AssertionError) as excinfo:
        tl.assert_each_step(pending_runs_new_config)
    message = str(excinfo.value)
    assert message.startswith("6 invariant violation(s):")
    assert message.count("[pending_runs_new_config]") == 5
    assert message.endswith("... and 1 more")


def test_a_config_seen_while_the_status_moved_counts_for_the_next_step_not_this_one() -> None:
    # the operator PUTs the next step's config before it writes the status: a sample whose status
    # changed while it probed shows that config under the step before (seen on a loaded CI machine)
    tl = upgrade(GOOD_KEYS, {(60, 40, 40): {"active_v": "v2"}})
    early = dataclasses.replace(step_with(tl, (80, 40, 40)).samples[-1], settled=False,
                                snapshots={ACTIVE: snap(ACTIVE, "v2", 80), PENDING: snap(PENDING, "v2", 40)})
    samples = [early if s is step_with(tl, (80, 40, 40)).samples[-1] else s for s in tl.samples]
    moved = timeline(*samples, reconcile_seconds=0.0)
    [first, *_] = violations(moved, active_config_frozen)
    assert "(60, 40, 40)" in first.step
    settled = dataclasses.replace(early, settled=True)
    trusted = timeline(*[settled if s is early else s for s in samples], reconcile_seconds=0.0)
    assert "(80, 40, 40)" in violations(trusted, active_config_frozen)[0].step
