"""Registry of upstream KubeRay bugs the suites know about.

A test marked ``@pytest.mark.kuberay_bug("4189")`` becomes a strict expected
failure on the versions the bug affects: it must fail there (the bug
reproduces) and must pass everywhere else. The registry is the single place
that says which versions are affected, so the suite's verdict and the README
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from pytest_kuberay.errors import SettingsError
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["BUG_KEY", "KNOWN_BUGS", "BugVerdict", "KnownBug", "Signature", "known_bug", "lookup", "parse_affected"]

_ISSUE_URL = "https://github.com/ray-project/kuberay/issues/{}"


@dataclass(frozen=True)
class Signature:
    """What a bug's violations look like: the invariant broken and, for config invariants, by what.

    ``became`` is whose config the cluster got instead ("new": the upgrade's, "old": the one it
    started from). ``after``/``unless_after`` name a marker of the recording (a trigger, such as
    ``operator-restart``) that must, or must not, precede the violation.
    """

    invariant: str
    role: str | None = None
    became: str | None = None
    after: str | None = None
    unless_after: str | None = None

    def matches(self, violation: Any, markers: Mapping[str, float]) -> bool:
        if violation.invariant != self.invariant:
            return False
        if self.role is not None and getattr(violation, "role", None) != self.role:
            return False
        if self.became is not None and getattr(violation, "became", None) != self.became:
            return False
        t = violation.t if violation.t is not None else float("inf")
        if self.after is not None and not (self.after in markers and markers[self.after] <= t):
            return False
        return not (self.unless_after is not None and self.unless_after in markers and markers[self.unless_after] <= t)


@dataclass(frozen=True)
class KnownBug:
    """One upstream bug: where it applies and what a failing test shows."""

    id: str
    title: str
    affected: SpecifierSet
    look_for: str = ""
    fixed_by: tuple[str, ...] = ()  # patch labels (see versions.KNOWN_PATCHES) that fix it
    #: Where it is described; default: the upstream issue of a numeric id.
    link: str | None = None
    #: What its violations look like; a violation matching none of them is not this bug. Empty: any violation.
    signature: tuple[Signature, ...] = ()

    def matches(self, violation: Any, markers: Mapping[str, float] | None = None) -> bool:
        """True when ``violation`` is what this bug does (its signature; any violation without one)."""
        return not self.signature or any(sig.matches(violation, markers or {}) for sig in self.signature)

    @property
    def url(self) -> str:
        if self.link:
            return self.link
        return _ISSUE_URL.format(self.id) if self.id.isdigit() else ""

    def affects(self, version: KubeRayVersion, affected: SpecifierSet | None = None) -> bool:
        """True when ``version`` has the bug: inside the range and not patched with a fix."""
        spec = affected if affected is not None else self.affected
        if any(patch in self.fixed_by for patch in version.patches):
            return False
        return spec.contains(version.release, prereleases=True)

    def xfail_reason(self, version: KubeRayVersion) -> str:
        where = f" ({self.url})" if self.url else ""
        return f"KubeRay bug #{self.id} affects {version.label}: {self.title}{where}"


@dataclass(frozen=True)
class BugVerdict:
    """What the known-bug registry decided for one collected test (kept in its stash under ``BUG_KEY``)."""

    bug: KnownBug
    version: KubeRayVersion
    expected_to_fail: bool
    marked: tuple[str, ...] = ()  # every bug the test is marked with, the deciding one among them


#: item.stash[BUG_KEY]: the test's BugVerdict, for tests marked ``kuberay_bug`` and run per version.
BUG_KEY = pytest.StashKey[BugVerdict]()


def parse_affected(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier as exc:
        raise SettingsError(
            f"kuberay_bug: affected={text!r} is not a version range; write it like '>=1.5.0,<1.5.1'"
        ) from exc


KNOWN_BUGS: dict[str, KnownBug] = {
    bug.id: bug
    for bug in (
        KnownBug(
            id="4189",
            title="the active cluster receives the new Serve config during an incremental upgrade",
            affected=SpecifierSet(">=1.5.0,<1.5.1"),
            look_for="the active cluster's deployed_app_config changes at its second step-down, "
            "step (60, 40, 40) with maxSurge 20",
            fixed_by=("pr4212",),
            # the active cluster gets the upgrade's own config, without an operator restart before it
            signature=(Signature("active_config_frozen", role="active", became="new",
                                 unless_after="operator-restart"),),
        ),
        KnownBug(
            id="4717",
            title="after an operator restart mid-upgrade the active cluster receives the new Serve config "
            "(the Serve-config cache is in memory only)",
            affected=SpecifierSet(">=1.5.0"),
            look_for="the active cluster's deployed_app_config changes at the first active step-down after the "
            "operator restarted",
            signature=(Signature("active_config_frozen", role="active", became="new", after="operator-restart"),),
        ),
        KnownBug(
            id="abandoned-pending",
            title="a spec change mid-upgrade abandons the pending cluster for a third one and sends all traffic to "
            "the under-provisioned active (no rollback before v1.6.0)",
            affected=SpecifierSet(">=1.5.0,<1.6.0"),
            look_for="a third RayCluster after the revert; the active keeps its lowered target capacity while "
            "the new pending gets no traffic",
            link="https://github.com/ray-project/kuberay/pull/4109",
            signature=(Signature("no_extra_clusters", after="revert-spec"),
                       Signature("capacity_covers_traffic", after="revert-spec"),
                       Signature("route_matches_status", after="revert-spec")),
        ),
        KnownBug(
            id="rollback-pending-config",
            title="during a rollback the pending cluster is redeployed with the reverted Serve config while it "
            "still gets traffic",
            affected=SpecifierSet(">=1.6.0,<1.7.0"),
            look_for="the pending cluster's deployed_app_config goes back to the old one after the revert",
            link="https://github.com/ray-project/kuberay/pull/4601",
            signature=(Signature("pending_config_frozen_during_rollback", role="pending", became="old"),),
        ),
        KnownBug(
            id="gateway-churn",
            title="the operator rewrites the Gateway on every reconcile (reflect.DeepEqual against a "
            "defaulted object), a write every few seconds at steady state",
            affected=SpecifierSet(">=1.5.0,<1.7.0"),
            look_for="the API server keeps serving writes on the Gateway with nothing to change",
            link="https://github.com/ray-project/kuberay/pull/4601",
            signature=(Signature("no_write_churn", role="gateways"),),
        ),
        KnownBug(
            id="httproute-churn",
            title="the operator rewrites the HTTPRoute on every reconcile, a write every few seconds at steady state",
            affected=SpecifierSet(">=1.5.0,<1.6.0"),
            look_for="the API server keeps serving writes on the HTTPRoute with nothing to change",
            link="https://github.com/ray-project/kuberay/pull/4109",
            signature=(Signature("no_write_churn", role="httproutes"),),
        ),
        KnownBug(
            id="unset-type-panic",
            title="with the incremental gate on, a RayService whose upgradeStrategy has no type makes the operator "
            "panic (nil pointer in IsIncrementalUpgradeEnabled) on every reconcile",
            affected=SpecifierSet(">=1.5.0,<1.7.0"),
            look_for="'Observed a panic' in the operator log; the RayService never becomes Ready",
            link="https://github.com/ray-project/kuberay/pull/5044",
            signature=(Signature("no_operator_panics"),),
        ),
        KnownBug(
            id="4636",
            title="stepSizePercent above maxSurgePercent is accepted and silently capped to maxSurge",
            affected=SpecifierSet(">=1.5.0,<1.7.0"),
            look_for="a pending cluster instead of ValidationFailed; traffic moves in maxSurge steps",
            signature=(Signature("invalid_options_rejected", role="step-above-surge"),),
        ),
        KnownBug(
            id="fast-rollback",
            title="a revert applied before the pending RayCluster exists builds it from the reverted spec and "
            "replaces the active cluster with an identical one",
            affected=SpecifierSet(">=1.5.0,<1.7.0"),
            look_for="a second cluster with the original spec, then a promotion: the active cluster's name changes",
            link="https://github.com/ray-project/kuberay/pull/4989",
            signature=(Signature("active_cluster_kept", after="revert-spec"),
                       Signature("no_extra_clusters", after="revert-spec")),
        ),
        KnownBug(
            id="pending-without-capacity",
            title="with a Gateway that is not ready, the pending cluster's Serve apps are deployed without "
            "target_capacity (at full size, beyond maxSurge)",
            affected=SpecifierSet(">=1.5.0,<1.7.0"),
            look_for="the pending cluster's live target_capacity is null (100%) while the active is at 100%",
            link="https://github.com/ray-project/kuberay/pull/4601",
            signature=(Signature("live_capacity_within_surge"),),
        ),
        KnownBug(
            id="4777",
            title="a non-integer target_capacity in serveConfigV2 stalls the upgrade (the de-dup check skips the "
            "step's status update, and the same step is recomputed forever)",
            affected=SpecifierSet(">=1.5.0"),
            look_for="the status stays at the first step while the pending cluster's apps are RUNNING",
            signature=(Signature("upgrade_progresses"),),
        ),
        KnownBug(
            id="active-deleted",
            title="deleting the active RayCluster makes the operator panic on every reconcile once the replacement "
            "is ready, with the HTTPRoute left pointing at the deleted cluster",
            affected=SpecifierSet(">=1.5.0"),
            look_for="'Observed a panic' in the operator log after the delete; an HTTPRoute backend of a cluster "
            "that is gone",
            link="docs/bugs/active-deleted.md (in the pytest-kuberay repository)",
            signature=(Signature("no_operator_panics", after="delete-active"),
                       Signature("route_backends_exist", after="delete-active")),
        ),
        KnownBug(
            id="third-spec-active",
            title="a third spec applied mid-upgrade (A -> B -> C) reaches the active cluster during the rollback: it "
            "runs C's Serve config on A's cluster spec",
            affected=SpecifierSet(">=1.7.0"),
            look_for="the active cluster's deployed_app_config changes to the third spec's while the pending is "
            "rolled back",
            link="https://github.com/ray-project/kuberay/pull/4601",
            signature=(Signature("active_config_frozen", role="active", after="third-spec"),),
        ),
        KnownBug(
            id="no-failback",
            title="a pending cluster lost mid-upgrade keeps its HTTPRoute weight until it is back: its share of the "
            "Gateway's requests fails meanwhile",
            affected=SpecifierSet(">=1.5.0"),
            look_for="after the pending RayCluster is deleted, about its traffic share of requests fails until the "
            "operator has made it again and its apps run",
            signature=(Signature("requests_recover", after="delete-pending"),),
        ),
        KnownBug(
            id="active-head-restart",
            title="the active cluster's head restarts mid-upgrade: its Serve apps are not deployed again until the "
            "next target_capacity step on it, while the HTTPRoute still sends it requests",
            affected=SpecifierSet(">=1.5.0"),
            look_for="after the active head pod is deleted, its dashboard answers with no Serve apps until the "
            "next step on the active cluster",
            signature=(Signature("active_apps_restored", after="delete-active-head"),),
        ),
        KnownBug(
            id="strategy-switch",
            title="switching upgradeStrategy.type to NewCluster mid-upgrade promotes the pending cluster at its "
            "partial target_capacity and leaves the HTTPRoute pointing at the deleted old cluster",
            affected=SpecifierSet(">=1.5.0"),
            look_for="after promotion the active cluster's live target_capacity stays at the step it had reached; "
            "an HTTPRoute backend of a cluster that is gone",
            link="docs/bugs/strategy-switch.md (in the pytest-kuberay repository)",
            signature=(Signature("promoted_at_full_capacity", after="switch-to-newcluster"),
                       Signature("route_backends_exist", after="switch-to-newcluster")),
        ),
        KnownBug(
            id="5148",
            title="after promotion the RayService's own Services (its head Service with the incremental strategy) "
            "keep selecting the old cluster until the new active cluster's Serve apps are all RUNNING, and have no "
            "endpoints once the old cluster is deleted",
            affected=SpecifierSet(">=1.5.0"),
            look_for="<rayservice>-head-svc (and -serve-svc where it exists) has 0 ready endpoints after the old "
            "cluster's deletion while the promoted cluster's apps are DEPLOYING; the Gateway still answers",
            signature=(Signature("serve_service_keeps_endpoints"),),
        ),
        KnownBug(
            id="zero-step",
            title="stepSizePercent 0 passes validation: the upgrade starts and can never move traffic",
            affected=SpecifierSet(">=1.5.0"),
            look_for="a pending cluster instead of ValidationFailed; its traffic stays at 0%",
            signature=(Signature("invalid_options_rejected", role="zero-step"),
                       Signature("upgrade_progresses", after="zero-step-accepted")),
        ),
    )
}


def known_bug(id: str, title: str, affected: str, *, look_for: str = "", fixed_by: tuple[str, ...] = (),
              link: str | None = None, signature: tuple[Signature, ...] = ()) -> KnownBug:
    """A bug of your own, to return from the ``pytest_kuberay_known_bugs`` hook in a conftest.py."""
    return KnownBug(str(id), title, parse_affected(affected), look_for, fixed_by, link, signature)


def lookup(bug_id: str, registry: dict[str, KnownBug] | None = None) -> KnownBug:
    """Return a registered bug (built-in or a conftest's), or say which ids exist."""
    bugs = KNOWN_BUGS if registry is None else registry
    try:
        return bugs[str(bug_id)]
    except KeyError:
        known = ", ".join(sorted(bugs))
        raise SettingsError(
            f"kuberay_bug: unknown bug id {bug_id!r}; registered ids: {known}. Register yours with the "
            "pytest_kuberay_known_bugs hook in a conftest.py, or give the marker affected= and title= "
            "(see README, 'Known bugs')."
        ) from None
