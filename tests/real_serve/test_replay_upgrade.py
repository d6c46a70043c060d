"""The recorder and invariants, proven on two real Ray Serve clusters (no Kubernetes, no mocks).

A test-only driver replays the exact Serve PUT sequence of an incremental
upgrade with maxSurge 20 / stepSize 20, once as KubeRay v1.5.0 makes it and
once as v1.5.1 does. The v1.5.0 replay must be flagged at step (60, 40, 40) on
the active cluster; the v1.5.1 replay must pass every invariant.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.observe.serve_probe import ServeProbe
from pytest_kuberay.observe.timeline import Timeline, TimelineRecorder
from pytest_kuberay.report.plot import plot_timeline
from pytest_kuberay.verdict.invariants import CAPACITY_INVARIANTS, CONFIG_INVARIANTS, Violation
from pytest_kuberay.verdict.sequence import expected_steps
from pytest_kuberay.workloads.serve_apps import echo_serve_config
from pytest_kuberay.workloads.serve_config import app_configs
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan
from tests.support.local_ray import LocalRayCluster
from tests.support.replay_operator import ReplayOperator

pytestmark = pytest.mark.slow

EXPECTED_SEQUENCE = expected_steps(20, 20)  # docs/kuberay-facts.md §1; tests/unit/test_sequence.py pins it
SAMPLE_INTERVAL = 0.25
HOLD = 1.5  # each replayed step lasts six sampling intervals


def _replay(clusters: tuple[LocalRayCluster, LocalRayCluster], behaviour: str, out: Path) -> Timeline:
    active, pending = clusters
    urls = {c.name: c.dashboard_url for c in clusters}
    http = {c.name: {"host": "127.0.0.1", "port": c.ports["serve"]} for c in clusters}
    old, new = echo_serve_config("v1"), echo_serve_config("v2")
    plan = UpgradePlan(app_configs(old), app_configs(new), max_surge_percent=20, step_size_percent=20)
    with ServeProbe.direct(active.name, active.dashboard_url) as a, \
            ServeProbe.direct(pending.name, pending.dashboard_url) as b:
        operator = ReplayOperator(a, b, old, new, http, behaviour, max_surge=20, step_size=20, hold=HOLD)
        operator.deploy_initial()
        eventually(a.snapshot, lambda s: "echo" in s.apps and s.apps["echo"].status == "RUNNING",
                   timeout=120, interval=1, description="the old config RUNNING on the active cluster")
        recorder = TimelineRecorder(operator, lambda name: ServeProbe.direct(name, urls[name], timeout=1.0),
                                    interval=SAMPLE_INTERVAL, plan=plan, reconcile_seconds=0.5)
        with recorder.recording():
            time.sleep(2 * SAMPLE_INTERVAL)
            published = operator.run_upgrade()
        timeline = recorder.timeline()
    timeline.write_json(out / f"timeline-{behaviour}.json")
    png = plot_timeline(timeline, out / f"timeline-{behaviour}.png", title=f"replay of {behaviour}'s PUT sequence")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert published == EXPECTED_SEQUENCE, "the replay itself no longer follows docs/kuberay-facts.md §1"
    return timeline


def _violations(timeline: Timeline, invariants: tuple) -> list[Violation]:
    return [v for step in timeline.steps for inv in invariants for v in inv(step)]


def test_recorder_sees_every_step(two_ray_clusters, tmp_path: Path) -> None:
    timeline = _replay(two_ray_clusters, "v1.5.1", tmp_path)
    upgrading = [s.key for s in timeline.steps if s.phase != "promoted"]
    assert upgrading == EXPECTED_SEQUENCE
    assert timeline.steps[-1].phase == "promoted"
    assert timeline.steps[-1].active_cluster == "ray-b"
    # the fixed behaviour passes every invariant, and the checks had samples to look at
    timeline.assert_each_step(*CONFIG_INVARIANTS, *CAPACITY_INVARIANTS)
    pending_configs = [c for c in timeline.config_changes if c.cluster == "ray-b"]
    assert pending_configs, "the pending cluster's first deploy was not recorded"
    assert not [c for c in timeline.config_changes if c.cluster == "ray-a"], "active config changed"


def test_v150_replay_is_flagged_at_step_60_40_40(two_ray_clusters, tmp_path: Path) -> None:
    timeline = _replay(two_ray_clusters, "v1.5.0", tmp_path)
    violations = _violations(timeline, CONFIG_INVARIANTS)
    assert violations, "the v1.5.0 PUT sequence was not flagged"
    first = violations[0]
    assert first.invariant == "active_config_frozen"
    assert first.cluster == "ray-a"
    assert "(60, 40, 40)" in first.step
    assert [str(c.path) for c in first.changes] == ["deployments[Echo].user_config.version"]
    assert (first.changes[0].expected, first.changes[0].actual) == ("v1", "v2")
    assert all(v.invariant == "active_config_frozen" for v in violations), "only the active cluster is wrong"
    # the config change itself is on record at that step
    active_changes = [c for c in timeline.config_changes if c.cluster == "ray-a"]
    assert [(c.step_key, c.before != c.after) for c in active_changes][:1] == [((60, 40, 40), True)]
    with pytest.raises(AssertionError) as failure:
        timeline.assert_each_step(*CONFIG_INVARIANTS)
    message = str(failure.value)
    print(message)  # shown with -s: the message must read on its own
    assert "active_config_frozen" in message and "step #" in message and "(60, 40, 40)" in message
    assert "deployments[Echo].user_config.version: expected 'v1', got 'v2'" in message
