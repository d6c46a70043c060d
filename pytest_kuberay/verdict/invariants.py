"""Invariants of an incremental upgrade: pure functions from a step to its violations.

Each violation names the step, the cluster and what differed, so the message
reads on its own in a CI log. Invariants judge the step as the RayService
status defines it and the live Serve state sampled during it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_kuberay.observe.config_diff import FieldChange, config_diff, format_changes
from pytest_kuberay.observe.serve_probe import ServeSnapshot, config_fingerprint
from pytest_kuberay.observe.timeline import Sample, Step

__all__ = [
    "CAPACITY_INVARIANTS",
    "CONFIG_INVARIANTS",
    "SKIP",
    "Invariant",
    "Violation",
    "active_config_frozen",
    "capacity_within_surge",
    "lasting_problem",
    "lasting_violation",
    "live_capacity_matches_status",
    "live_capacity_within_surge",
    "monotonic_progress",
    "pending_runs_new_config",
    "traffic_within_capacity",
]

@dataclass(frozen=True)
class Violation:
    invariant: str
    step: str  # the step's label: index, key and start time
    cluster: str | None
    message: str
    changes: tuple[FieldChange, ...] = field(default=())
    t: float | None = None
    #: For config invariants: which cluster it was ("active"/"pending") and what its wrong config is:
    #: "new" (the upgrade's config), "old" (the config the upgrade started from) or "other".
    role: str | None = None
    became: str | None = None

    def __str__(self) -> str:
        where = f" on cluster {self.cluster!r}" if self.cluster else ""
        text = f"[{self.invariant}] {self.step}{where}: {self.message}"
        if self.changes:
            text += "\n" + format_changes(list(self.changes))
        return text


Invariant = Callable[[Step], list[Violation]]


def _snapshots(step: Step, cluster: str | None) -> list[tuple[Sample, ServeSnapshot]]:
    if cluster is None:
        return []
    return [(s, s.snapshots[cluster]) for s in step.samples if cluster in s.snapshots
            and s.snapshots[cluster].ok]


def _config_violations(
    name: str, step: Step, cluster: str | None, role: str, expected: dict[str, dict], subset: bool, what: str
) -> list[Violation]:
    """One violation per app whose deployed config differs from ``expected`` in this step.

    Only settled samples count: in one whose status moved while the clusters were probed, a
    config the operator sent for the next step shows under this one (it PUTs, then writes the
    status), and the violation would name the wrong step.
    """
    violations = []
    observed = [(s, snap) for s, snap in _snapshots(step, cluster) if snap.apps and s.settled]
    for app, want in expected.items():
        bad = []
        for sample, snap in observed:
            got = snap.apps.get(app)
            changes = config_diff(want, got.deployed_app_config if got else None, subset=subset)
            if changes:
                bad.append((sample, got, changes))
        if not bad:
            continue
        sample, got, changes = bad[0]
        fp_want, fp_got = config_fingerprint(want), got.fingerprint if got else None
        violations.append(Violation(
            name, step.label(), cluster,
            f"{role} app {app!r} {what} (fingerprint {fp_want} -> {fp_got}); first seen at t={sample.t:.1f}s, "
            f"in {len(bad)} of {len(observed)} samples of this step",
            tuple(changes), sample.t, role, what_it_became(step, app, got.deployed_app_config if got else None),
        ))
    return violations


def what_it_became(step: Step, app: str, config: dict | None) -> str:
    """Whose config a cluster runs instead: the upgrade's ("new"), the starting one ("old"), or another."""
    if config is None:
        return "other"
    plan = step.timeline.plan
    if plan is not None and app in plan.new_apps and not config_diff(plan.new_apps[app], config, subset=True):
        return "new"
    baseline = step.timeline.baseline.get(app)
    if baseline is not None and not config_diff(baseline, config):
        return "old"
    return "other"


def active_config_frozen(step: Step) -> list[Violation]:
    """Until promotion the active cluster keeps the Serve config it ran when the upgrade began."""
    if step.phase == "promoted" or step.active_cluster != step.timeline.initial_active:
        return []
    return _config_violations("active_config_frozen", step, step.active_cluster, "active",
                              step.timeline.baseline, subset=False,
                              what="no longer runs the config it had when the upgrade began")


def pending_runs_new_config(step: Step) -> list[Violation]:
    """Once it has apps, the pending cluster runs the upgrade's new config."""
    if step.phase != "upgrading" or step.plan is None:
        return []
    return _config_violations("pending_runs_new_config", step, step.pending_cluster, "pending",
                              step.plan.new_apps, subset=True, what="does not run the new config")


def capacity_within_surge(step: Step) -> list[Violation]:
    """Status capacities: active TC + pending TC <= 100 + maxSurge."""
    if step.phase != "upgrading" or step.plan is None:
        return []
    active, pending, _ = step.key
    limit = 100 + step.plan.max_surge_percent
    if active + pending <= limit:
        return []
    return [Violation("capacity_within_surge", step.label(), None,
                      f"active TC {active} + pending TC {pending} = {active + pending} exceeds "
                      f"100 + maxSurge {step.plan.max_surge_percent} = {limit}", t=step.start)]


def traffic_within_capacity(step: Step) -> list[Violation]:
    """The pending cluster never gets more traffic than its target capacity."""
    _, pending, traffic = step.key
    if step.phase != "upgrading" or traffic <= pending:
        return []
    return [Violation("traffic_within_capacity", step.label(), step.pending_cluster,
                      f"traffic routed {traffic}% exceeds the pending target capacity {pending}%",
                      t=step.start)]


def monotonic_progress(step: Step) -> list[Violation]:
    """Active TC only falls, pending TC and traffic only rise, between consecutive upgrade steps."""
    prev = step.previous
    if prev is None or step.phase != "upgrading" or prev.phase == "promoted":
        return []
    if prev.active_cluster != step.active_cluster:
        return []
    (a0, p0, t0), (a1, p1, t1) = prev.key, step.key
    problems = []
    if a1 > a0:
        problems.append(f"active TC rose {a0} -> {a1}")
    if prev.phase == "upgrading" and p1 < p0:
        problems.append(f"pending TC fell {p0} -> {p1}")
    if prev.phase == "upgrading" and t1 < t0:
        problems.append(f"traffic fell {t0} -> {t1}")
    if not problems:
        return []
    return [Violation("monotonic_progress", step.label(), None,
                      "; ".join(problems) + f" (previous: {prev.label()})", t=step.start)]


def _live_tc(snap: ServeSnapshot) -> float:
    return 100.0 if snap.target_capacity is None else snap.target_capacity


#: What a judge returns for a sample it cannot judge (neither fine nor a problem).
SKIP = object()


def lasting_problem(samples: list[Sample], judge: Callable[[Sample], object], grace: float
                    ) -> tuple[float, Sample, str] | None:
    """The first problem that lasts longer than ``grace``: (since, the sample that proves it, the problem).

    ``judge(sample)`` returns None when the sample is fine, a message when it is not, or
    :data:`SKIP` when it cannot tell (the sample neither starts nor ends a disagreement).
    """
    since: float | None = None
    for sample in samples:
        verdict = judge(sample)
        if verdict is SKIP:
            continue
        if verdict is None:
            since = None
            continue
        since = sample.t if since is None else since
        if sample.t - since > grace:
            return since, sample, str(verdict)
    return None


def lasting_violation(invariant: str, step: Step, judge: Callable[[Sample], object]) -> list[Violation]:
    """``judge``'s first problem in ``step`` that outlasts one reconcile and a sampling interval, as a violation."""
    found = lasting_problem(step.samples, judge, step.timeline.reconcile_seconds + step.timeline.interval)
    if found is None:
        return []
    since, sample, problem = found
    return [Violation(invariant, step.label(), None,
                      f"{problem}, for {sample.t - since:.1f}s (since t={since:.1f}s)", t=since)]

def live_capacity_matches_status(step: Step) -> list[Violation]:
    """A cluster's live ``target_capacity`` and its status TC never disagree for longer than one reconcile.

    The operator PUTs a capacity and writes the status in the same reconcile, in either order, so
    they may disagree briefly; a disagreement that outlasts a reconcile (plus a sampling interval)
    is a violation. Samples taken while the status moved are not trusted either way.
    """
    if step.phase != "upgrading":
        return []
    grace = step.timeline.reconcile_seconds + step.timeline.interval
    active_tc, pending_tc, _ = step.key
    violations = []
    for role, cluster, want in (("active", step.active_cluster, active_tc),
                                ("pending", step.pending_cluster, pending_tc)):
        def judge(sample: Sample, cluster: str | None = cluster, want: int = want, role: str = role) -> object:
            snap = sample.snapshots.get(cluster or "")
            if snap is None or not snap.ok or not snap.apps or not sample.settled:
                return SKIP
            if abs(_live_tc(snap) - want) <= 0.01:
                return None
            return (f"{role} cluster's live target_capacity is {snap.target_capacity} but its status says "
                    f"{want}")

        found = lasting_problem(step.samples, judge, grace)
        if found is not None:
            since, sample, problem = found
            violations.append(Violation("live_capacity_matches_status", step.label(), cluster,
                                        f"{problem}, for {sample.t - since:.1f}s (since t={since:.1f}s)", t=sample.t))
    return violations


def live_capacity_within_surge(step: Step) -> list[Violation]:
    """Live capacities (null = 100): active + pending <= 100 + maxSurge in every sample."""
    if step.phase != "upgrading" or step.plan is None:
        return []
    limit = 100 + step.plan.max_surge_percent
    for sample in step.samples:
        active = sample.snapshots.get(step.active_cluster or "")
        pending = sample.snapshots.get(step.pending_cluster or "")
        if not (active and pending and active.ok and pending.ok and pending.apps):
            continue
        total = _live_tc(active) + _live_tc(pending)
        if total > limit:
            return [Violation(
                "live_capacity_within_surge", step.label(), step.pending_cluster,
                f"live capacities active {active.target_capacity} + pending {pending.target_capacity} "
                f"(null counts as 100) = {total:g} exceed 100 + maxSurge = {limit} at t={sample.t:.1f}s",
                t=sample.t)]
    return []


CONFIG_INVARIANTS: tuple[Invariant, ...] = (active_config_frozen, pending_runs_new_config)
CAPACITY_INVARIANTS: tuple[Invariant, ...] = (
    capacity_within_surge, traffic_within_capacity, monotonic_progress, live_capacity_matches_status,
)
