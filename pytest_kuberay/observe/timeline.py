"""Samples of an upgrade, grouped into steps, with every Serve-config change on record.

The recorder samples at a fixed rate (deadlines, not sleeps after work), so a
state that lasts two sampling intervals is always sampled at least once. Steps
and config changes are derived from the samples, never stored twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_kuberay.observe.config_diff import ABSENT, FieldChange, config_diff
from pytest_kuberay.observe.objects import ObjectSnapshot, ObjectSource
from pytest_kuberay.observe.rayservice_status import RayServiceStatus, StatusSource
from pytest_kuberay.observe.serve_probe import ServeProbe, ServeSnapshot
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

__all__ = ["ConfigChange", "InvariantViolationError", "Sample", "Step", "StepKey", "Timeline", "TimelineRecorder"]

log = logging.getLogger(__name__)

#: How long one operator reconcile may take from acting (a Serve PUT) to writing the status. The
#: operator requeues every 2 s, but one reconcile also probes both dashboards and updates the
#: Gateway and HTTPRoute; at the release manifests' CPU limit (100m, enforced by the real node's
#: cgroups) that took up to 3 s on a 2-core machine (v1.5.0, live TC 20 vs status 0 for 3.0 s).
OPERATOR_RECONCILE_SECONDS = 5.0

StepKey = tuple[int, int, int]  # (active TC, pending TC, pending traffic routed percent)


class InvariantViolationError(AssertionError):
    """An upgrade broke an invariant. Known-bug xfails accept only this, never a timeout or a crash."""

    def __init__(self, message: str, violations: Sequence[Any] = (), timeline: Timeline | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations)
        self.timeline = timeline  # the recording, so a known bug's signature can be matched against it

    @classmethod
    def raise_if(cls, violations: Sequence[Any], timeline: Timeline | None = None) -> None:
        """Fail with every violation (the first one first), or return when there is none."""
        if not violations:
            return
        shown = "\n\n".join(str(v) for v in violations[:5])
        more = f"\n\n... and {len(violations) - 5} more" if len(violations) > 5 else ""
        raise cls(f"{len(violations)} invariant violation(s):\n\n{shown}{more}", violations, timeline)


@dataclass(frozen=True)
class Sample:
    """All snapshots at one instant plus the RayService status."""

    t: float  # seconds since recording began
    status: RayServiceStatus | None
    snapshots: dict[str, ServeSnapshot]
    status_error: str | None = None
    # False when the status changed while the clusters were probed: the snapshots may belong to either
    # step, so checks comparing live state with the status skip this sample
    settled: bool = True
    #: The route, RayClusters, serve endpoints and events at this instant (None: not observed).
    objects: ObjectSnapshot | None = None

    @property
    def key(self) -> StepKey | None:
        return None if self.status is None else self.status.step_key

    @property
    def active_cluster(self) -> str | None:
        return self.status.active.cluster if self.status and self.status.active else None

    @property
    def pending_cluster(self) -> str | None:
        return self.status.pending.cluster if self.status and self.status.pending else None

    def role_of(self, cluster: str) -> str:
        if cluster == self.active_cluster:
            return "active"
        if cluster == self.pending_cluster:
            return "pending"
        return "other"


@dataclass(frozen=True)
class ConfigChange:
    """A cluster's deployed app config changed (or appeared) between two of its snapshots."""

    t: float
    cluster: str
    role: str
    app: str
    before: str | None  # fingerprint
    after: str | None
    step_key: StepKey | None
    changes: tuple[FieldChange, ...]


@dataclass
class Step:
    """A run of samples with the same (active TC, pending TC, pending traffic) and the same active cluster."""

    index: int
    key: StepKey
    active_cluster: str | None
    pending_cluster: str | None
    samples: list[Sample]
    timeline: Timeline = field(repr=False)
    previous: Step | None = field(default=None, repr=False)

    @property
    def start(self) -> float:
        return self.samples[0].t

    @property
    def end(self) -> float:
        return self.samples[-1].t

    @property
    def phase(self) -> str:
        """``before`` the pending cluster exists, ``upgrading`` while it does, ``promoted`` after."""
        initial = self.timeline.initial_active
        if initial is not None and self.active_cluster not in (None, initial):
            return "promoted"
        return "upgrading" if self.pending_cluster else "before"

    @property
    def plan(self) -> UpgradePlan | None:
        return self.timeline.plan

    @property
    def requests(self) -> list[Any]:
        """Gateway requests sent from this step's first sample until the next step's."""
        steps = self.timeline.steps
        until = steps[self.index + 1].start if self.index + 1 < len(steps) else float("inf")
        return [r for r in self.timeline.requests if self.start <= r.t < until]

    def label(self) -> str:
        active, pending, traffic = self.key
        return f"step #{self.index} ({active}, {pending}, {traffic}) at t={self.start:.1f}s"


class Timeline:
    """Everything recorded during one upgrade."""

    def __init__(
        self, samples: list[Sample], plan: UpgradePlan | None, interval: float,
        reconcile_seconds: float = OPERATOR_RECONCILE_SECONDS
    ) -> None:
        self.samples = samples
        self.plan = plan
        self.interval = interval
        self.reconcile_seconds = reconcile_seconds  # how long the operator may take to act on a status
        self.requests: list[Any] = []  # requests sent through the Gateway meanwhile (drive.traffic.RequestResult)
        self.ray_versions: dict[str, str] = {}  # cluster -> the Ray version its dashboard reports
        #: When the test acted mid-upgrade (trigger name -> t), e.g. ``operator-restart``.
        self.markers: dict[str, float] = {}
        #: Writes the API server served per resource, read before and after the recording (see record_for).
        self.writes: dict[str, tuple[int, int]] = {}

    @cached_property
    def initial_active(self) -> str | None:
        return next((s.active_cluster for s in self.samples if s.active_cluster), None)

    @cached_property
    def first_pending(self) -> str | None:
        """The pending cluster the upgrade created first: the only one an upgrade may create."""
        return next((s.pending_cluster for s in self.samples if s.pending_cluster), None)

    @cached_property
    def cluster_first_seen(self) -> dict[str, float]:
        """Every RayCluster of the RayService seen in a status or as an object -> when, in order of appearance."""
        seen: dict[str, float] = {}
        for sample in self.samples:
            for name in [*(sample.status.clusters() if sample.status else []),
                         *(sample.objects.rayclusters if sample.objects and sample.objects.ok else ())]:
                seen.setdefault(name, sample.t)
        return seen

    @property
    def clusters_ever(self) -> list[str]:
        return list(self.cluster_first_seen)

    def event_count(self, reason: str, at: Sample) -> int:
        """How often ``reason`` was emitted in the namespace up to sample ``at`` (0 if never)."""
        return at.objects.events.get(reason, 0) if at.objects and at.objects.ok else 0

    @cached_property
    def baseline(self) -> dict[str, dict[str, Any]]:
        """The initial active cluster's deployed app configs, as first seen with apps."""
        initial = self.initial_active
        for sample in self.samples:
            snap = sample.snapshots.get(initial or "")
            if snap and snap.ok and snap.apps:
                return {name: app.deployed_app_config or {} for name, app in snap.apps.items()}
        return {}

    @cached_property
    def steps(self) -> list[Step]:
        steps: list[Step] = []
        for sample in self.samples:
            if sample.key is None:
                continue
            last = steps[-1] if steps else None
            if last and last.key == sample.key and last.active_cluster == sample.active_cluster:
                last.samples.append(sample)
                if sample.pending_cluster and not last.pending_cluster:
                    last.pending_cluster = sample.pending_cluster
                continue
            steps.append(Step(len(steps), sample.key, sample.active_cluster, sample.pending_cluster,
                              [sample], self, last))
        return steps

    @cached_property
    def config_changes(self) -> list[ConfigChange]:
        last_seen: dict[str, ServeSnapshot] = {}
        changes: list[ConfigChange] = []
        for sample in self.samples:
            for cluster, snap in sample.snapshots.items():
                if not snap.ok:
                    continue
                before = last_seen.get(cluster)
                last_seen[cluster] = snap
                if before is None:
                    continue
                for app in sorted(set(before.apps) | set(snap.apps)):
                    old, new = before.apps.get(app), snap.apps.get(app)
                    old_fp = old.fingerprint if old else None
                    new_fp = new.fingerprint if new else None
                    if old_fp == new_fp:
                        continue
                    diff = config_diff(
                        old.deployed_app_config if old else ABSENT, new.deployed_app_config if new else ABSENT
                    )
                    changes.append(ConfigChange(sample.t, cluster, sample.role_of(cluster), app, old_fp,
                                                new_fp, sample.key, tuple(diff)))
        return changes

    def step_keys(self) -> list[StepKey]:
        return [step.key for step in self.steps]

    def assert_each_step(self, *invariants: Callable[[Step], list[Any]]) -> None:
        """Run every invariant on every step; fail with all violations, first one first."""
        InvariantViolationError.raise_if([v for step in self.steps for inv in invariants for v in inv(step)], self)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "interval": self.interval,
            "reconcile_seconds": self.reconcile_seconds,
            "plan": _plain(self.plan),
            "initial_active": self.initial_active,
            "clusters_ever": self.clusters_ever,
            "ray_versions": dict(self.ray_versions),
            "markers": dict(self.markers),
            "writes": {k: list(v) for k, v in self.writes.items()},
            "steps": [
                {"index": s.index, "key": list(s.key), "start": s.start, "end": s.end, "phase": s.phase,
                 "active_cluster": s.active_cluster, "pending_cluster": s.pending_cluster,
                 "samples": len(s.samples)}
                for s in self.steps
            ],
            "config_changes": [_plain(c) for c in self.config_changes],
            "samples": [_plain(s) for s in self.samples],
            "requests": [_plain(r) for r in self.requests],
        }
        return json.loads(json.dumps(data, default=repr))  # ABSENT -> "<absent>", tuples -> lists

    def write_json(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=repr))
        return path


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return obj


ProbeFactory = Callable[[str], ServeProbe]
SampleListener = Callable[[Sample], None]


class TimelineRecorder:
    """Samples a RayService's status and every cluster's live Serve state at a fixed interval."""

    def __init__(
        self,
        status_source: StatusSource,
        probe_for: ProbeFactory,
        interval: float = 0.5,
        plan: UpgradePlan | None = None,
        listeners: list[SampleListener] | None = None,
        reconcile_seconds: float = OPERATOR_RECONCILE_SECONDS,
        probe_wait: float | None = None,
        objects: ObjectSource | None = None,
    ) -> None:
        """``probe_wait``: how long a sample waits for its probes (default: 90% of the interval).

        A longer wait than the interval trades rate for data on a loaded machine: the sample
        comes late (the next one is re-anchored) instead of holding an error.
        """
        self.reconcile_seconds = reconcile_seconds
        self.probe_wait = probe_wait if probe_wait is not None else interval * 0.9
        self.status_source = status_source
        self.object_source = objects
        self.probe_for = probe_for
        self.interval = interval
        self.plan = plan
        self.listeners = list(listeners or [])
        self._samples: list[Sample] = []
        self._probes: dict[str, ServeProbe] = {}
        self._ray_versions: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="serve-probe")
        self._t0 = 0.0
        self._lock = threading.Lock()

    # -- sampling -------------------------------------------------------------------------------
    def _probe(self, cluster: str) -> ServeProbe:
        if cluster not in self._probes:
            self._probes[cluster] = self.probe_for(cluster)
        return self._probes[cluster]

    def _snapshot(self, cluster: str) -> ServeSnapshot:
        """A probe's snapshot; even a probe that raises yields a snapshot, so the recorder never dies."""
        try:
            probe = self._probe(cluster)
            snapshot = probe.snapshot()
        except Exception as exc:
            return ServeSnapshot(cluster, time.monotonic(), error=f"{type(exc).__name__}: {exc}")
        if snapshot.ok and cluster not in self._ray_versions:  # once per cluster: it does not change
            try:
                version = probe.ray_version()
            except Exception:
                log.debug("reading the Ray version of %s failed", cluster, exc_info=True)
                version = None
            if version:
                with self._lock:
                    self._ray_versions[cluster] = version
        return snapshot

    def _unchanged(self, before: RayServiceStatus | None) -> bool:
        """Read the status again: did it move while we probed?"""
        if before is None:
            return True
        try:
            after = self.status_source.read()
        except Exception:
            return False
        return after.step_key == before.step_key and after.clusters() == before.clusters()

    def sample_once(self) -> Sample:
        """Take one sample now: status first (it defines the step), then all clusters in parallel."""
        t = time.monotonic() - self._t0
        status: RayServiceStatus | None = None
        status_error = None
        try:
            status = self.status_source.read()
        except Exception as exc:  # a status read failure is data, not a crash
            status_error = f"{type(exc).__name__}: {exc}"
        clusters = status.clusters() if status else []
        futures = {c: self._pool.submit(self._snapshot, c) for c in clusters}
        objects_future = self._pool.submit(self.object_source.read) if self.object_source else None
        pending: list[Future[Any]] = [*futures.values(), *([objects_future] if objects_future else [])]
        wait(pending, timeout=max(self.probe_wait, 0.05))
        snapshots = {
            cluster: fut.result() if fut.done() else
            ServeSnapshot(cluster, time.monotonic(), error=f"probe slower than {self.probe_wait:.2f}s")
            for cluster, fut in futures.items()
        }
        objects = None
        if objects_future is not None:
            objects = (objects_future.result() if objects_future.done()
                       else ObjectSnapshot(error=f"object read slower than {self.probe_wait:.2f}s"))
        sample = Sample(t, status, snapshots, status_error, settled=self._unchanged(status), objects=objects)
        with self._lock:
            self._samples.append(sample)
        for listener in self.listeners:
            try:
                listener(sample)
            except Exception:
                log.exception("timeline listener failed")
        return sample

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            deadline += self.interval
            now = time.monotonic()
            if deadline < now:  # we fell behind; sample again at once and re-anchor
                log.debug("sampling fell behind by %.3fs", now - deadline)
                deadline = now
            self._stop.wait(deadline - now)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="timeline-recorder", daemon=True)
        self._thread.start()

    def stop(self) -> Timeline:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for probe in self._probes.values():
            probe.close()
        return self.timeline()

    def timeline(self) -> Timeline:
        """The samples so far, as a Timeline (safe to call while recording)."""
        with self._lock:
            timeline = Timeline(list(self._samples), self.plan, self.interval, self.reconcile_seconds)
            timeline.ray_versions = dict(self._ray_versions)
            return timeline

    @property
    def t0(self) -> float:
        """The ``time.monotonic()`` at which recording began; sample times count from here."""
        return self._t0

    def latest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    @contextmanager
    def recording(self) -> Iterator[TimelineRecorder]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
