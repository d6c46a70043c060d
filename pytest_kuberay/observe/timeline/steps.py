"""Samples grouped into steps (one per status key and active cluster), and every Serve-config change.

Steps and config changes are derived from the samples, never stored twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_kuberay.observe.config_diff import ABSENT, FieldChange, config_diff
from pytest_kuberay.observe.serve_probe import ServeSnapshot
from pytest_kuberay.observe.timeline.export import timeline_dict, write_timeline_json
from pytest_kuberay.observe.timeline.samples import Sample, StepKey
from pytest_kuberay.observe.timeline.violations import InvariantViolationError
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

__all__ = ["OPERATOR_RECONCILE_SECONDS", "ConfigChange", "Step", "Timeline"]

#: How long one operator reconcile may take from acting (a Serve PUT) to writing the status. The
#: operator requeues every 2 s, but one reconcile also probes both dashboards and updates the
#: Gateway and HTTPRoute; at the release manifests' CPU limit (100m, enforced by the real node's
#: cgroups) that took up to 3 s on a 2-core machine (v1.5.0, live TC 20 vs status 0 for 3.0 s).
OPERATOR_RECONCILE_SECONDS = 5.0


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

    def _settled_key_from(self, index: int) -> StepKey | None:
        """The step of the first settled sample at or after ``index``.

        In a sample whose status moved while the clusters were probed, a change may belong to the
        step that was starting; the next settled sample is the first to show it under a stable status.
        """
        return next((s.key for s in self.samples[index:] if s.settled and s.key is not None), None)

    @cached_property
    def config_changes(self) -> list[ConfigChange]:
        last_seen: dict[str, ServeSnapshot] = {}
        changes: list[ConfigChange] = []
        for index, sample in enumerate(self.samples):
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
                                                new_fp, sample.key if sample.settled else
                                                self._settled_key_from(index), tuple(diff)))
        return changes

    def step_keys(self) -> list[StepKey]:
        return [step.key for step in self.steps]

    def assert_each_step(self, *invariants: Callable[[Step], list[Any]]) -> None:
        """Run every invariant on every step; fail with all violations, first one first."""
        InvariantViolationError.raise_if([v for step in self.steps for inv in invariants for v in inv(step)], self)

    def to_dict(self) -> dict[str, Any]:
        return timeline_dict(self)

    def write_json(self, path: Path) -> Path:
        return write_timeline_json(self, path)
