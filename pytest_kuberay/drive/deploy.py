"""Put a RayService on a cluster and wait until it serves.

Every wait names what it waited for and shows the last RayService status it
saw, so a stuck deploy explains itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pytest_kuberay.install.apply import apply_manifests
from pytest_kuberay.observe.rayservice_status import RayServiceStatus, parse_rayservice_status
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.verdict.polling import eventually
from pytest_kuberay.workloads.rayservice import serve_app_configmap

__all__ = ["DeployedRayService", "deploy_rayservice", "describe_status"]

log = logging.getLogger(__name__)


@dataclass
class DeployedRayService:
    """A RayService we applied, with the manifest it currently has."""

    cluster: ClusterHandle
    name: str
    namespace: str
    manifest: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier manifests, oldest first

    def read(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.custom.get_namespaced_custom_object(
            "ray.io", "v1", self.namespace, "rayservices", self.name)
        return obj

    def status(self) -> RayServiceStatus:
        return parse_rayservice_status(self.read())

    def apply(self, manifest: dict[str, Any]) -> None:
        """Server-side apply a new spec (an upgrade trigger), remembering the old one."""
        self.history.append(self.manifest)
        self.manifest = manifest
        apply_manifests(self.cluster.dynamic, [manifest])


def describe_status(status: RayServiceStatus) -> str:
    def cluster(c: Any) -> str:
        if c is None:
            return "none"
        apps = ", ".join(f"{k}={v}" for k, v in c.app_statuses.items()) or "no apps"
        return f"{c.cluster} (TC {c.target_capacity}, traffic {c.traffic_routed_percent}, {apps})"

    conditions = ", ".join(f"{k}={v}" for k, v in status.conditions.items()) or "none"
    return (f"serviceStatus={status.service_status}; active: {cluster(status.active)}; "
            f"pending: {cluster(status.pending)}; conditions: {conditions}")


def serving(status: RayServiceStatus) -> str:
    """Empty when the RayService is Ready with every active app RUNNING, else what is missing."""
    if status.conditions.get("Ready") != "True":
        return "condition Ready is not True"
    if status.active is None or not status.active.app_statuses:
        return "no active cluster with apps yet"
    not_running = {k: v for k, v in status.active.app_statuses.items() if v != "RUNNING"}
    return f"apps not RUNNING: {not_running}" if not_running else ""


def deploy_rayservice(cluster: ClusterHandle, manifest: dict[str, Any], timeout: float,
                      apps: tuple[str, ...] = ("echo",)) -> DeployedRayService:
    """Apply the apps' ConfigMaps and the RayService, then wait until it is Ready and its apps RUNNING."""
    namespace = manifest["metadata"]["namespace"]
    apply_manifests(cluster.dynamic, [serve_app_configmap(app, namespace) for app in apps] + [manifest])
    deployed = DeployedRayService(cluster, manifest["metadata"]["name"], namespace, manifest)
    eventually(deployed.status, serving, timeout=timeout, interval=2.0,
               description=f"RayService {namespace}/{deployed.name} Ready with its apps RUNNING",
               show=describe_status)
    log.info("RayService %s/%s is serving", namespace, deployed.name)
    return deployed
