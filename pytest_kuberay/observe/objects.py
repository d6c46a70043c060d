"""The Kubernetes objects around a RayService, read at every sample: route, clusters, endpoints, events.

The Serve probes say what each Ray cluster runs; these say what the operator did with
the objects it owns: the HTTPRoute's backends and weights, every RayCluster of the
RayService, the ready endpoints of ``<rayservice>-serve-svc`` and the events it emitted,
counted per reason. Bugs such as a third RayCluster (B1), a route whose weights do not
add up, write churn (B6/B7) or a serve Service without endpoints (B15) show only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["KubernetesObjectSource", "ObjectSnapshot", "ObjectSource", "RouteBackend", "head_service",
           "httproute_name", "parse_route_backends", "serve_service", "serve_service_cluster"]

RAYCLUSTER_OWNER_LABEL = "ray.io/originated-from-cr-name"


def serve_service(rayservice: str) -> str:
    """The RayService-level Service that selects the active cluster's serving pods."""
    return f"{rayservice}-serve-svc"


def head_service(name: str) -> str:
    """KubeRay's head Service of a RayCluster, or of a RayService (it selects the active cluster's head pod).

    Both are ``<name>-head-svc``; its dashboard port is named ``dashboard``.
    """
    return f"{name}-head-svc"


def httproute_name(rayservice: str) -> str:
    """The HTTPRoute KubeRay makes for an incremental RayService."""
    return f"{rayservice}-httproute"


def serve_service_cluster(service: str) -> str | None:
    """``<cluster>-serve-svc`` (a per-cluster backend of the HTTPRoute) -> ``<cluster>``."""
    return service[: -len("-serve-svc")] if service.endswith("-serve-svc") else None


@dataclass(frozen=True)
class RouteBackend:
    """One backendRef of the HTTPRoute's rules: a Service and its weight (None: unset, i.e. 1)."""

    service: str
    weight: int | None

    @property
    def cluster(self) -> str | None:
        return serve_service_cluster(self.service)


@dataclass(frozen=True)
class ObjectSnapshot:
    """The objects at one instant. ``route`` is None without an HTTPRoute; an endpoint count without its Service.

    ``serve_endpoints`` and ``head_endpoints`` count the ready endpoints of the RayService's own
    ``<rayservice>-serve-svc`` and ``<rayservice>-head-svc``. With the incremental strategy KubeRay
    makes no ``-serve-svc`` (the Gateway routes to each cluster's own), only the ``-head-svc``.
    """

    route: tuple[RouteBackend, ...] | None = None
    rayclusters: tuple[str, ...] = ()
    serve_endpoints: int | None = None
    #: Events in the RayService's namespace: reason -> how many times it was emitted so far.
    events: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    head_endpoints: int | None = None

    def stable_service_endpoints(self) -> dict[str, int]:
        """The RayService's own Services that exist ("serve", "head") -> their ready endpoints."""
        counts = {"serve": self.serve_endpoints, "head": self.head_endpoints}
        return {kind: count for kind, count in counts.items() if count is not None}

    @property
    def ok(self) -> bool:
        return self.error is None

    def route_weights(self) -> dict[str, int]:
        """cluster -> weight, for the backends that name a cluster's serve Service."""
        return {b.cluster: (1 if b.weight is None else b.weight) for b in self.route or () if b.cluster}


class ObjectSource(Protocol):
    """Anything that can read the objects around one RayService."""

    def read(self) -> ObjectSnapshot: ...


def parse_route_backends(route: dict[str, Any]) -> tuple[RouteBackend, ...]:
    """Every backendRef of every rule, in order (KubeRay writes one rule: active first, then pending)."""
    return tuple(RouteBackend(str(ref.get("name", "")), ref.get("weight"))
                 for rule in (route.get("spec") or {}).get("rules") or []
                 for ref in rule.get("backendRefs") or [])


def _count_events(items: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in items:
        reason = event.reason or "?"
        # core/v1 events aggregate repeats in ``count``; a series (events.k8s.io) keeps its own count
        repeats = event.count or (event.series.count if getattr(event, "series", None) else 0) or 1
        counts[reason] = counts.get(reason, 0) + repeats
    return counts


class KubernetesObjectSource:
    """Reads the objects of RayService ``namespace/name`` through the Kubernetes API."""

    def __init__(self, cluster: Any, namespace: str, name: str) -> None:
        from kubernetes import client

        self._cluster = cluster
        self._discovery = client.DiscoveryV1Api(cluster.api_client)
        self.namespace = namespace
        self.name = name

    def _route(self) -> tuple[RouteBackend, ...] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            route = self._cluster.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", httproute_name(self.name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return parse_route_backends(route)

    def _rayclusters(self) -> tuple[str, ...]:
        items = self._cluster.custom.list_namespaced_custom_object(
            "ray.io", "v1", self.namespace, "rayclusters", label_selector=f"{RAYCLUSTER_OWNER_LABEL}={self.name}")
        return tuple(sorted(i["metadata"]["name"] for i in items["items"]))

    def _ready_endpoints(self, service: str) -> int | None:
        """Ready endpoints of ``service`` from its EndpointSlices; None when it has none (no such Service)."""
        slices = self._discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={service}").items
        if not slices:
            return None
        return sum(1 for s in slices for e in s.endpoints or []
                   if e.conditions is None or e.conditions.ready is not False)

    def read(self) -> ObjectSnapshot:
        try:
            events = _count_events(self._cluster.core.list_namespaced_event(self.namespace).items)
            return ObjectSnapshot(self._route(), self._rayclusters(), self._ready_endpoints(serve_service(self.name)),
                                  events, head_endpoints=self._ready_endpoints(head_service(self.name)))
        except Exception as exc:  # a failed read is data, like a failed probe
            return ObjectSnapshot(error=f"{type(exc).__name__}: {exc}")
