"""Timeline: samples grouped into steps, config changes on record, and a recorder that misses nothing.

The first half builds Timelines from hand-written Sample lists (no threads). The second half runs
the real TimelineRecorder against a status source and probes that follow a time.monotonic schedule.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_kuberay.observe.config_diff import FieldChange
from pytest_kuberay.observe.rayservice_status import RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeSnapshot, parse_applications
from pytest_kuberay.observe.timeline import Sample, Timeline, TimelineRecorder
from tests.unit.timeline_builders import (
    ACTIVE,
    PENDING,
    app_config,
    failed_snap,
    payload,
    plan,
    promoted,
    sample,
    snap,
    status,
    timeline,
)

VERSION_FIELD = "deployments[Echo].user_config.version"


def upgrade_samples() -> list[Sample]:
    """A well-behaved upgrade, maxSurge 20, cut short after the first step-down, then promoted."""
    return [
        sample(0.0, status(), snap(ACTIVE, "v1")),
        sample(0.5, status(), snap(ACTIVE, "v1")),
        sample(1.0, status(100, 20, 0), snap(ACTIVE, "v1"), snap(PENDING, None)),
        sample(1.5, status(100, 20, 0), snap(ACTIVE, "v1"), snap(PENDING, "v2", 20)),
        sample(2.0, status(100, 20, 20), snap(ACTIVE, "v1"), snap(PENDING, "v2", 20)),
        sample(2.5, status(80, 20, 20), snap(ACTIVE, "v1", 80), snap(PENDING, "v2", 20)),
        sample(3.0, status(80, 20, 20), snap(ACTIVE, "v1", 80), snap(PENDING, "v2", 20)),
        sample(3.5, promoted(), snap(PENDING, "v2")),
    ]


# -- Timeline from samples ----------------------------------------------------------------------


def test_steps_group_samples_by_key_and_active_cluster() -> None:
    tl = timeline(*upgrade_samples())
    assert tl.step_keys() == [(100, 0, 0), (100, 20, 0), (100, 20, 20), (80, 20, 20), (100, 0, 0)]
    assert [len(s.samples) for s in tl.steps] == [2, 2, 1, 2, 1]
    assert [s.index for s in tl.steps] == [0, 1, 2, 3, 4]
    assert [s.active_cluster for s in tl.steps] == [ACTIVE] * 4 + [PENDING]
    assert [s.pending_cluster for s in tl.steps] == [None, PENDING, PENDING, PENDING, None]
    assert [s.phase for s in tl.steps] == ["before", "upgrading", "upgrading", "upgrading", "promoted"]
    step = tl.steps[3]
    assert (step.start, step.end) == (2.5, 3.0)
    assert step.previous is tl.steps[2]
    assert tl.steps[0].previous is None
    assert step.label() == "step #3 (80, 20, 20) at t=2.5s"
    assert step.plan is tl.plan


def test_same_key_on_a_new_active_cluster_is_a_new_step() -> None:
    tl = timeline(sample(0, status(), snap(ACTIVE, "v1")), sample(1, promoted(), snap(PENDING, "v2")))
    assert tl.step_keys() == [(100, 0, 0), (100, 0, 0)]
    assert [s.phase for s in tl.steps] == ["before", "promoted"]


def test_pending_cluster_appearing_within_a_step_is_kept() -> None:
    tl = timeline(sample(0, status(), snap(ACTIVE, "v1")), sample(1, status(100, 0, 0), snap(ACTIVE, "v1")))
    assert len(tl.steps) == 1
    assert tl.steps[0].pending_cluster == PENDING
    assert tl.steps[0].phase == "upgrading"


def test_status_errors_are_kept_as_samples_but_not_steps() -> None:
    samples = upgrade_samples()
    samples.insert(3, sample(1.2, None, error="ApiException: 503"))
    tl = timeline(*samples)
    assert len(tl.samples) == 9
    assert tl.samples[3].key is None
    assert tl.step_keys() == [(100, 0, 0), (100, 20, 0), (100, 20, 20), (80, 20, 20), (100, 0, 0)]
    assert len(tl.steps[1].samples) == 2  # the error did not split the step


def test_initial_active_and_baseline() -> None:
    samples = [sample(0, None, error="boom"), sample(0.5, status(), failed_snap(ACTIVE)),
               sample(1, status(), snap(ACTIVE, None)), *upgrade_samples()]
    tl = timeline(*samples)
    assert tl.initial_active == ACTIVE
    assert tl.baseline == {"echo": app_config("v1")}  # first snapshot that is ok and has apps
    assert timeline().baseline == {}
    assert timeline().initial_active is None


def test_config_changes_record_cluster_role_step_and_field_diff() -> None:
    samples = [
        sample(0.0, status(60, 40, 40), snap(ACTIVE, "v1", 60), snap(PENDING, "v2", 40)),
        sample(0.5, status(60, 40, 40), failed_snap(ACTIVE), snap(PENDING, "v2", 40)),  # errors are skipped
        sample(1.0, status(60, 40, 40), snap(ACTIVE, "v2", 60), snap(PENDING, "v2", 40)),
        sample(1.5, status(60, 60, 40), snap(ACTIVE, "v2", 60), snap(PENDING, "v2", 60)),  # capacity only
    ]
    changes = timeline(*samples).config_changes
    assert len(changes) == 1
    change = changes[0]
    assert (change.t, change.cluster, change.role, change.app) == (1.0, ACTIVE, "active", "echo")
    assert change.step_key == (60, 40, 40)
    assert change.changes == (FieldChange(VERSION_FIELD, "v1", "v2"),)
    assert change.before == snap(ACTIVE, "v1").apps["echo"].fingerprint
    assert change.after == snap(ACTIVE, "v2").apps["echo"].fingerprint
    assert change.before != change.after


def test_a_change_seen_while_the_status_moved_belongs_to_the_next_settled_step() -> None:
    """The operator PUTs the next step's config, then writes the status: a sample in between is unsettled."""
    moving = Sample(1.0, status(80, 40, 40), {s.cluster: s for s in (snap(ACTIVE, "v2", 60), snap(PENDING, "v2", 40))},
                    settled=False)
    samples = [
        sample(0.0, status(80, 40, 40), snap(ACTIVE, "v1", 80), snap(PENDING, "v2", 40)),
        moving,
        sample(1.5, status(60, 40, 40), snap(ACTIVE, "v2", 60), snap(PENDING, "v2", 40)),
    ]
    changes = timeline(*samples).config_changes
    assert [(c.t, c.cluster, c.step_key) for c in changes] == [(1.0, ACTIVE, (60, 40, 40))]


def test_an_app_appearing_is_a_change_from_none() -> None:
    changes = timeline(*upgrade_samples()).config_changes
    assert [(c.cluster, c.role, c.step_key, c.before) for c in changes] == [
        (PENDING, "pending", (100, 20, 0), None)
    ]
    assert changes[0].changes[0].path == "<root>"
    assert changes[0].changes[0].actual == app_config("v2")


def test_to_dict_is_plain_json(tmp_path: Path) -> None:
    tl = timeline(*upgrade_samples(), sample(4.0, None, error="ApiException: 503"))
    data = json.loads(json.dumps(tl.to_dict()))  # no default=: every value must already be JSON
    assert data["initial_active"] == ACTIVE
    assert [s["key"] for s in data["steps"]] == [list(k) for k in tl.step_keys()]
    assert data["steps"][-1]["phase"] == "promoted"
    assert len(data["samples"]) == 9
    assert data["samples"][-1]["status_error"] == "ApiException: 503"
    assert data["plan"]["max_surge_percent"] == 20
    assert data["config_changes"][0]["changes"][0]["expected"] == "<absent>"


def test_write_json_round_trips(tmp_path: Path) -> None:
    tl = timeline(*upgrade_samples())
    path = tl.write_json(tmp_path / "nested" / "timeline.json")
    data = json.loads(path.read_text())
    assert data["interval"] == 0.5
    assert [s["samples"] for s in data["steps"]] == [2, 2, 1, 2, 1]
    assert data["config_changes"][0]["cluster"] == PENDING
    assert data["config_changes"][0]["changes"][0]["expected"] == "<absent>"
    apps = data["samples"][0]["snapshots"][ACTIVE]["apps"]
    assert apps["echo"]["deployed_app_config"] == app_config("v1")


# -- the recorder, against a schedule -----------------------------------------------------------


State = tuple[RayServiceStatus | Exception, dict[str, str | None]]


class World:
    """A RayService and its clusters that move through ``states`` on a time.monotonic schedule.

    Each state is (status or an exception to raise, {cluster: Serve version or None}) and lasts
    ``hold`` seconds from the first read; the last state lasts forever. Probes answer for the
    state the last status read saw, as a real cluster would within one sample.
    """

    def __init__(self, states: list[State], hold: float, probe_delay: float = 0.0) -> None:
        self.states, self.hold, self.probe_delay = states, hold, probe_delay
        self.t0: float | None = None
        self.current = 0
        self.reads = 0
        self.closed: list[str] = []

    @property
    def duration(self) -> float:
        return self.hold * len(self.states)

    def finished(self) -> bool:
        return self.t0 is not None and time.monotonic() - self.t0 > self.duration

    def read(self) -> RayServiceStatus:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        self.current = min(int((now - self.t0) / self.hold), len(self.states) - 1)
        self.reads += 1
        st = self.states[self.current][0]
        if isinstance(st, Exception):
            raise st
        return st

    def probe_for(self, cluster: str) -> FakeProbe:
        return FakeProbe(self, cluster)


class FakeProbe:
    """Stands in for ServeProbe: snapshot() parses a hand-written applications payload."""

    def __init__(self, world: World, cluster: str) -> None:
        self.world, self.cluster = world, cluster

    def snapshot(self) -> ServeSnapshot:
        version = self.world.states[self.world.current][1].get(self.cluster)
        time.sleep(self.world.probe_delay)
        return parse_applications(self.cluster, payload(version), time.monotonic())

    def ray_version(self) -> str:
        return f"2.46.0-{self.cluster}"

    def close(self) -> None:
        self.world.closed.append(self.cluster)


def record(world: World, interval: float, **kwargs: Any) -> Timeline:
    recorder = TimelineRecorder(world, world.probe_for, interval=interval, **kwargs)  # type: ignore[arg-type]
    deadline = time.monotonic() + world.duration + 10
    with recorder.recording():
        while not world.finished():
            assert time.monotonic() < deadline, "the recorder never read the status"
            time.sleep(interval / 2)
        time.sleep(2 * interval)  # sample the final state too
    return recorder.timeline()


def test_recorder_records_an_upgrade_through_promotion() -> None:
    both: dict[str, str | None] = {ACTIVE: "v1", PENDING: "v2"}
    world = World([
        (status(), {ACTIVE: "v1"}),
        (status(100, 20, 0), {ACTIVE: "v1", PENDING: None}),
        (status(100, 20, 20), both),
        (status(80, 20, 20), both),
        (status(80, 40, 20), {ACTIVE: "v2", PENDING: "v2"}),  # the active cluster's config changes here
        (promoted(), {PENDING: "v2"}),
    ], hold=0.2)
    tl = record(world, interval=0.05, plan=plan())
    assert tl.step_keys() == [(100, 0, 0), (100, 20, 0), (100, 20, 20), (80, 20, 20), (80, 40, 20), (100, 0, 0)]
    assert [s.phase for s in tl.steps] == ["before"] + ["upgrading"] * 4 + ["promoted"]
    assert tl.steps[-1].active_cluster == PENDING
    assert tl.ray_versions == {ACTIVE: f"2.46.0-{ACTIVE}", PENDING: f"2.46.0-{PENDING}"}
    assert tl.to_dict()["ray_versions"] == tl.ray_versions
    assert all(len(s.samples) >= 2 for s in tl.steps)
    active_changes = [c for c in tl.config_changes if c.cluster == ACTIVE]
    assert [(c.role, c.step_key, c.changes) for c in active_changes] == [
        ("active", (80, 40, 20), (FieldChange(VERSION_FIELD, "v1", "v2"),))
    ]
    assert [(c.role, c.step_key, c.before) for c in tl.config_changes if c.cluster == PENDING] == [
        ("pending", (100, 20, 20), None)
    ]
    assert sorted(world.closed) == [ACTIVE, PENDING]  # stop() closed every probe it opened
    times = [s.t for s in tl.samples]
    assert times == sorted(times)
    assert 0 <= times[0] < 0.05


def test_a_failing_status_read_is_a_sample_and_recording_goes_on() -> None:
    world = World([
        (status(), {ACTIVE: "v1"}),
        (RuntimeError("API server unavailable"), {}),
        (status(100, 20, 0), {ACTIVE: "v1", PENDING: "v2"}),
    ], hold=0.2)
    tl = record(world, interval=0.05)
    errors = [s for s in tl.samples if s.status_error]
    assert errors, "no sample carried the status error"
    assert {s.status_error for s in errors} == {"RuntimeError: API server unavailable"}
    assert all(s.status is None and s.snapshots == {} and s.key is None for s in errors)
    assert tl.samples.index(errors[-1]) < len(tl.samples) - 1, "the recorder stopped after the error"
    assert tl.step_keys() == [(100, 0, 0), (100, 20, 0)]


def test_listeners_see_every_sample_and_a_failing_one_is_ignored() -> None:
    seen: list[Sample] = []

    def broken(_: Sample) -> None:
        raise ValueError("listener bug")

    world = World([(status(), {ACTIVE: "v1"}), (status(100, 20, 0), {ACTIVE: "v1"})], hold=0.15)
    recorder = TimelineRecorder(world, world.probe_for, interval=0.05,  # type: ignore[arg-type]
                                listeners=[broken, seen.append])
    with recorder.recording():
        while not world.finished():
            time.sleep(0.02)
        assert recorder.latest() is not None
    assert seen == recorder.timeline().samples
    assert len(seen) >= 4


def test_a_probe_slower_than_the_interval_becomes_an_error_snapshot() -> None:
    release = threading.Event()

    class SlowProbe:
        def snapshot(self) -> ServeSnapshot:
            release.wait(5)
            return parse_applications(ACTIVE, payload("v1"), time.monotonic())

        def close(self) -> None:
            pass

    recorder = TimelineRecorder(World([(status(), {})], hold=1), lambda _: SlowProbe(),  # type: ignore[arg-type,return-value]
                                interval=0.05)
    try:
        taken = recorder.sample_once()
    finally:
        release.set()
        recorder.stop()
    assert taken.snapshots[ACTIVE].error == "probe slower than 0.05s"  # 90% of the interval by default: 0.045 s


def test_the_recorder_never_misses_a_state_of_two_intervals() -> None:
    """20 states of two intervals each, probes taking 40% of an interval; three recorders at once.

    The guarantee assumes the sampling thread gets a CPU within an interval; 0.1 s leaves room for a
    loaded 2-core CI machine.
    """
    interval = 0.1
    keys = [(100 - i, i, i) for i in range(20)]

    def one_run(_: int) -> list[tuple[int, int, int]]:
        states: list[State] = [(status(a, p, t), {ACTIVE: "v1", PENDING: "v2"}) for a, p, t in keys]
        world = World(states, hold=2 * interval, probe_delay=0.4 * interval)
        return record(world, interval=interval).step_keys()

    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(one_run, range(3)))
    for run, seen in enumerate(runs):
        assert seen == keys, f"run {run}: missed {sorted(set(keys) - set(seen))}"


def test_a_probe_that_raises_becomes_an_error_snapshot_and_recording_goes_on() -> None:
    """ServeProbe promises never to raise, but a recorder that dies on one probe bug records nothing."""

    class RaisingProbe:
        def snapshot(self) -> ServeSnapshot:
            raise RuntimeError("unexpected payload")

        def close(self) -> None:
            pass

    world = World([(status(), {}), (status(100, 20, 0), {})], hold=0.15)
    recorder = TimelineRecorder(world, lambda _: RaisingProbe(), interval=0.05)  # type: ignore[arg-type,return-value]
    with recorder.recording():
        while not world.finished():
            time.sleep(0.02)
        time.sleep(0.1)
    tl = recorder.timeline()
    assert tl.step_keys() == [(100, 0, 0), (100, 20, 0)]
    error = tl.samples[0].snapshots[ACTIVE].error
    assert error is not None and "unexpected payload" in error
