"""Put a RayService on a cluster and wait until it serves.

Every wait names what it waited for and shows the last RayService status it
saw, so a stuck deploy explains itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.phases import PHASES
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.drive.traffic import ECHO_TRAFFIC, TrafficSpec
from pytest_kuberay.errors import KubeRayTestError
from pytest_kuberay.observe.objects import RAYCLUSTER_OWNER_LABEL, head_service, httproute_name
from pytest_kuberay.observe.rayservice_status import RayServiceStatus, parse_rayservice_status
from pytest_kuberay.observe.serve_probe import ServeProbe
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.workloads.rayservice import serve_app_configmap
from pytest_kuberay.workloads.serve_apps import SERVE_APPS_DIR

__all__ = ["DeployedRayService", "deploy_rayservice", "describe_status", "serving", "wait_gateway_ready"]

log = logging.getLogger(__name__)


@dataclass
class DeployedRayService:
    """A RayService we applied, with the manifest it currently has."""

    cluster: ClusterHandle
    name: str
    namespace: str
    manifest: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier manifests, oldest first
    #: What to send through the Gateway (routes, parser); the readiness wait uses the first.
    traffic: list[TrafficSpec] = field(default_factory=lambda: [ECHO_TRAFFIC])
    #: The Serve apps shipped as ConfigMaps (name -> directory), mounted into every new manifest too.
    apps: dict[str, Path] = field(default_factory=dict)

    def read(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.custom.get_namespaced_custom_object(
            "ray.io", "v1", self.namespace, "rayservices", self.name)
        return obj

    def status(self) -> RayServiceStatus:
        return parse_rayservice_status(self.read())

    def serve_probe(self, cluster_name: str, timeout: float = 5.0) -> ServeProbe:
        """A probe of one of its Ray clusters' live Serve state, through the API server (close it after use)."""
        return ServeProbe.via_api_server(cluster_name, self.namespace, head_service(cluster_name),
                                         self.cluster.api_client, timeout=timeout)

    def rayclusters(self) -> list[str]:
        """The names of the RayClusters the operator made for it (by their owner label)."""
        listed = self.cluster.custom.list_namespaced_custom_object(
            "ray.io", "v1", self.namespace, "rayclusters", label_selector=f"{RAYCLUSTER_OWNER_LABEL}={self.name}")
        return [item["metadata"]["name"] for item in listed.get("items", [])]

    def raycluster(self, cluster_name: str) -> dict[str, Any] | None:
        """One of its RayClusters as the API server has it, or None when there is none of that name."""
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(self.cluster.custom.get_namespaced_custom_object("ray.io", "v1", self.namespace,
                                                                         "rayclusters", cluster_name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete_raycluster(self, cluster_name: str) -> None:
        """Delete one of its RayClusters, as a failure would (a mistaken kubectl delete, a cleanup job)."""
        self.cluster.custom.delete_namespaced_custom_object("ray.io", "v1", self.namespace, "rayclusters",
                                                            cluster_name)

    def delete_head_pod(self, cluster_name: str) -> str:
        """Kill the head pod of one of its RayClusters at once, as a node failure or an OOM kill would (no
        grace period); returns its name.

        Without GCS fault tolerance the RayCluster's controller starts a new head with an empty
        Ray cluster: no Serve apps until the RayService operator deploys them again.
        """
        pods = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"ray.io/cluster={cluster_name},ray.io/node-type=head").items
        if not pods:
            raise KubeRayTestError(f"RayCluster {cluster_name} has no head pod in {self.namespace} to delete")
        name: str = pods[0].metadata.name
        self.cluster.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        return name

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
                      apps: Mapping[str, Path] | None = None,
                      traffic: Sequence[TrafficSpec] = (ECHO_TRAFFIC,),
                      operator_ready: Callable[[], None] | None = None) -> DeployedRayService:
    """Apply the apps' ConfigMaps and the RayService, then wait until it is Ready and its apps RUNNING.

    ``apps`` maps app names to directories (default: the shipped echo app). ``operator_ready``
    is waited for after applying: the operator may still be starting when the RayService is
    applied (it reconciles it once it runs), and an operator that never gets Ready is a clearer
    failure than a RayService that never does.
    """
    namespace = manifest["metadata"]["namespace"]
    apps = dict(apps) if apps is not None else {"echo": SERVE_APPS_DIR / "echo"}
    configmaps = [serve_app_configmap(name, namespace, Path(path)) for name, path in apps.items()]
    apply_manifests(cluster.dynamic, [*configmaps, manifest])
    deployed = DeployedRayService(cluster, manifest["metadata"]["name"], namespace, manifest, traffic=list(traffic),
                                  apps={n: Path(p) for n, p in apps.items()})
    if operator_ready is not None:
        operator_ready()
    with PHASES.phase(f"RayService {namespace}/{deployed.name} serving"):
        eventually(deployed.status, serving, timeout=timeout, interval=1.0,
                   description=f"RayService {namespace}/{deployed.name} Ready with its apps RUNNING",
                   show=describe_status)
    log.info("RayService %s/%s is serving", namespace, deployed.name)
    _mark_first_cluster_created(deployed)
    return deployed


def _mark_first_cluster_created(deployed: DeployedRayService) -> None:
    """Put the first RayCluster's creation on the phase clock: where the first Ray cluster's start begins.

    The serving wait may begin long after it (the operator is waited for first), so the benchmark
    takes the cluster's start from here. ``creationTimestamp`` has whole seconds: up to 1 s early.
    """
    stamps = []
    for name in deployed.rayclusters():
        created = (deployed.raycluster(name) or {}).get("metadata", {}).get("creationTimestamp")
        if created:
            stamps.append(dt.datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp())
    if stamps:
        at = time.monotonic() - (time.time() - min(stamps))
        PHASES.add(f"first RayCluster of {deployed.namespace}/{deployed.name} created", at, at)


def _route_conditions(deployed: DeployedRayService) -> dict[str, str]:
    route = deployed.cluster.custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", deployed.namespace, "httproutes", httproute_name(deployed.name))
    parents = (route.get("status") or {}).get("parents", [])
    return {c["type"]: c["status"] for p in parents for c in p.get("conditions", [])}


def _answers(url: str, spec: TrafficSpec) -> str:
    try:
        response = httpx.request(spec.method, url.rstrip("/") + spec.path, headers=dict(spec.headers),
                                 content=spec.body, timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:80]}"


def wait_gateway_ready(deployed: DeployedRayService, url: str | None, timeout: float) -> None:
    """The HTTPRoute is Accepted with ResolvedRefs by the gateway controller, and the Gateway answers.

    A RayService can report Ready a moment before its gateway controller has programmed the route
    (seen with v1.6.2 and Traefik: a 404 right after Ready); traffic checks start only after this.
    """
    eventually(lambda: _route_conditions(deployed),
               lambda c: c.get("Accepted") == "True" and c.get("ResolvedRefs") == "True",
               timeout=timeout, interval=1.0,
               description=f"HTTPRoute {deployed.namespace}/{httproute_name(deployed.name)} Accepted and ResolvedRefs")
    if url is not None:
        spec = deployed.traffic[0] if deployed.traffic else TrafficSpec("/")
        eventually(lambda: url, lambda u: _answers(u, spec), timeout=timeout, interval=1.0,
                   description=f"a 2xx for {spec.method} {spec.path} through the Gateway at {url}")
