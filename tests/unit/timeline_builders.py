"""Hand-written RayService statuses, Serve snapshots and samples for timeline and invariant tests.

Snapshots are built from the JSON shape of ``GET /api/serve/applications/`` through
``parse_applications``, so they take the same path as a real probe's.
"""

from __future__ import annotations

from typing import Any

from pytest_kuberay.observe.rayservice_status import ClusterStatus, RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeSnapshot, parse_applications
from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

ACTIVE, PENDING = "rs-a", "rs-b"


def app_config(version: str, replicas: int = 2) -> dict[str, Any]:
    """One app's config as ``deployed_app_config`` echoes it."""
    return {
        "name": "echo",
        "route_prefix": "/",
        "import_path": "echo:app",
        "deployments": [{"name": "Echo", "num_replicas": replicas, "user_config": {"version": version}}],
    }


def payload(version: str | None, target_capacity: float | None = None) -> dict[str, Any]:
    """A ``GET /api/serve/applications/`` body: one RUNNING echo app at ``version``, or no apps."""
    if version is None:
        return {"target_capacity": target_capacity, "applications": {}}
    return {
        "target_capacity": target_capacity,
        "applications": {
            "echo": {
                "status": "RUNNING",
                "deployed_app_config": app_config(version),
                "deployments": {
                    "Echo": {"status": "HEALTHY", "target_num_replicas": 2,
                             "replicas": [{"state": "RUNNING"}, {"state": "RUNNING"}]},
                },
            }
        },
    }


def snap(cluster: str, version: str | None, target_capacity: float | None = None, t: float = 0.0) -> ServeSnapshot:
    return parse_applications(cluster, payload(version, target_capacity), t)


def failed_snap(cluster: str, t: float = 0.0) -> ServeSnapshot:
    return ServeSnapshot(cluster, t, error="ConnectError: connection refused")


def status(active_tc: int | None = None, pending_tc: int | None = None, traffic: int | None = None,
           active: str = ACTIVE, pending: str | None = PENDING) -> RayServiceStatus:
    """A RayService status; ``pending_tc=None`` means no pending cluster."""
    pending_status = None if pending_tc is None or pending is None else ClusterStatus(pending, pending_tc, traffic)
    return RayServiceStatus(ClusterStatus(active, active_tc, None if pending_status is None else 100 - (traffic or 0)),
                            pending_status)


def promoted(active: str = PENDING) -> RayServiceStatus:
    """After promotion: the former pending cluster is active with everything, no pending cluster."""
    return RayServiceStatus(ClusterStatus(active, 100, 100), None)


def plan(max_surge: int = 20, step_size: int = 20) -> UpgradePlan:
    return UpgradePlan({"echo": app_config("v1")}, {"echo": app_config("v2")},
                       max_surge_percent=max_surge, step_size_percent=step_size)


def sample(t: float, st: RayServiceStatus | None, *snapshots: ServeSnapshot, error: str | None = None) -> Sample:
    return Sample(t, st, {s.cluster: s for s in snapshots}, error)


def timeline(*samples: Sample, with_plan: bool = True, interval: float = 0.5,
             reconcile_seconds: float = 2.0) -> Timeline:
    return Timeline(list(samples), plan() if with_plan else None, interval, reconcile_seconds)
