"""One sample of an upgrade: the RayService status and every cluster's live Serve state at one instant."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kuberay.observe.objects import ObjectSnapshot
from pytest_kuberay.observe.rayservice_status import RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeSnapshot

__all__ = ["Sample", "StepKey"]

StepKey = tuple[int, int, int]  # (active TC, pending TC, pending traffic routed percent)


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
