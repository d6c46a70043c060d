"""The RayService status as the operator reports it, read into plain types.

The recorder takes its status from any :class:`StatusSource`: the Kubernetes
API in the suites, or a test driver standing in for the operator when the
observation code is checked against real Ray Serve without Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ClusterStatus",
    "KubernetesStatusSource",
    "RayServiceStatus",
    "StatusSource",
    "parse_rayservice_status",
]


@dataclass(frozen=True)
class ClusterStatus:
    """One of ``status.activeServiceStatus`` / ``status.pendingServiceStatus``."""

    cluster: str
    target_capacity: int | None = None
    traffic_routed_percent: int | None = None
    app_statuses: dict[str, str] = field(default_factory=dict)
    last_traffic_migrated_time: str | None = None  # RFC 3339, set by the operator when traffic moves


@dataclass(frozen=True)
class RayServiceStatus:
    active: ClusterStatus | None
    pending: ClusterStatus | None
    service_status: str | None = None
    conditions: dict[str, str] = field(default_factory=dict)  # type -> "True"/"False"
    condition_reasons: dict[str, str] = field(default_factory=dict)  # type -> reason, e.g. ValidationFailed

    @property
    def upgrade_in_progress(self) -> bool:
        return self.conditions.get("UpgradeInProgress") == "True"

    @property
    def step_key(self) -> tuple[int, int, int]:
        """(active TC, pending TC, pending traffic), with the defaults of a cluster not yet upgrading.

        A missing active capacity means it serves everything (100); a missing
        pending cluster has capacity and traffic 0.
        """
        active_tc = 100 if self.active is None or self.active.target_capacity is None else (
            self.active.target_capacity
        )
        if self.pending is None:
            return (active_tc, 0, 0)
        return (
            active_tc,
            self.pending.target_capacity or 0,
            self.pending.traffic_routed_percent or 0,
        )

    def clusters(self) -> list[str]:
        return [c.cluster for c in (self.active, self.pending) if c is not None]


class StatusSource(Protocol):
    """Anything that can tell the current RayService status."""

    def read(self) -> RayServiceStatus: ...


def _cluster_status(raw: dict[str, Any] | None) -> ClusterStatus | None:
    if not raw or not raw.get("rayClusterName"):
        return None
    apps = {name: str(app.get("status", "")) for name, app in (raw.get("applicationStatuses") or {}).items()}
    return ClusterStatus(
        cluster=raw["rayClusterName"],
        target_capacity=raw.get("targetCapacity"),
        traffic_routed_percent=raw.get("trafficRoutedPercent"),
        app_statuses=apps,
        last_traffic_migrated_time=raw.get("lastTrafficMigratedTime"),
    )


def parse_rayservice_status(obj: dict[str, Any]) -> RayServiceStatus:
    """Read a RayService object (as the API returns it) into a :class:`RayServiceStatus`."""
    status = obj.get("status") or {}
    return RayServiceStatus(
        active=_cluster_status(status.get("activeServiceStatus")),
        pending=_cluster_status(status.get("pendingServiceStatus")),
        service_status=status.get("serviceStatus"),
        conditions={c["type"]: c.get("status", "") for c in status.get("conditions") or []},
        condition_reasons={c["type"]: c.get("reason", "") for c in status.get("conditions") or []},
    )


class KubernetesStatusSource:
    """Reads a RayService through the Kubernetes API (``ray.io/v1``)."""

    def __init__(self, custom_objects_api: Any, namespace: str, name: str) -> None:
        self._api = custom_objects_api
        self.namespace = namespace
        self.name = name

    def read(self) -> RayServiceStatus:
        obj = self._api.get_namespaced_custom_object("ray.io", "v1", self.namespace, "rayservices", self.name)
        return parse_rayservice_status(obj)
