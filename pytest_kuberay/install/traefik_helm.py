"""Traefik as the gateway controller on kind, installed from its Helm chart (``--kuberay-gateway-class=traefik``).

The same Traefik line (v3.6) the local provider builds from source, here as the
upstream chart. One Traefik serves every Gateway KubeRay creates; its port-80
entryPoint is NodePort 30080, which the kind config publishes on 127.0.0.1, so
the gateway URL is fixed for the whole session.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import yaml

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.install.gateway import TRAEFIK_CONTROLLER, gateway_class
from pytest_kuberay.install.helm_cli import Helm
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import ensure_managed_namespace

__all__ = [
    "TRAEFIK_CHART_VERSION",
    "TRAEFIK_NAMESPACE",
    "TRAEFIK_NODE_PORT",
    "TRAEFIK_VALUES_FILE",
    "TraefikHelmGateway",
    "gateway_class_accepted",
    "traefik_values",
]

log = logging.getLogger(__name__)

TRAEFIK_VALUES_FILE = data_dir("manifests") / "helm-values-traefik.yaml"
TRAEFIK_REPO = os.environ.get("PYTEST_KUBERAY_TRAEFIK_HELM_REPO", "https://traefik.github.io/charts")
TRAEFIK_CHART = "traefik"
#: Chart 39.0.5 ships Traefik v3.6.10; its values.schema.json accepts manifests/helm-values-traefik.yaml.
TRAEFIK_CHART_VERSION = "39.0.5"
TRAEFIK_NAMESPACE = "traefik"
TRAEFIK_RELEASE = "traefik"
#: Must equal the containerPort of the kind config's extraPortMappings entry.
TRAEFIK_NODE_PORT = 30080


def traefik_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(TRAEFIK_VALUES_FILE.read_text())
    return values


def gateway_class_accepted(cluster: ClusterHandle, name: str) -> str:
    """Empty when GatewayClass ``name`` is Accepted by its controller, else what is missing (for waits)."""
    from kubernetes.client.exceptions import ApiException

    try:
        obj = cluster.custom.get_cluster_custom_object("gateway.networking.k8s.io", "v1", "gatewayclasses", name)
    except ApiException as exc:
        if exc.status == 404:
            return f"GatewayClass {name} does not exist"
        raise
    conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
    accepted = conditions.get("Accepted", {})
    if accepted.get("status") == "True":
        return ""
    return (f"GatewayClass {name} (controller {obj['spec'].get('controllerName')}) is not Accepted: "
            f"{accepted.get('reason', 'no Accepted condition yet')} {accepted.get('message', '')}".rstrip())


class TraefikHelmGateway:
    """Traefik installed by Helm; the GatewayClass is applied by us (the one the dry-run test checks)."""

    def __init__(self, cluster: ClusterHandle, helm: Helm, host_port: int, class_name: str = "traefik") -> None:
        self.cluster = cluster
        self.helm = helm
        self.host_port = host_port
        self.class_name = class_name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    def install(self, timeout: float = 300.0) -> None:
        ensure_managed_namespace(self.cluster, TRAEFIK_NAMESPACE)
        chart_dir = self.helm.pull(TRAEFIK_CHART, TRAEFIK_REPO, TRAEFIK_CHART_VERSION)
        self.helm.upgrade_install(TRAEFIK_RELEASE, chart_dir, TRAEFIK_NAMESPACE, traefik_values(), timeout=timeout)
        apply_manifests(self.cluster.dynamic, [gateway_class(self.class_name, TRAEFIK_CONTROLLER)])
        wait_for(lambda: gateway_class_accepted(self.cluster, self.class_name), lambda why: why, timeout=timeout,
                 description=f"GatewayClass {self.class_name} Accepted by Traefik", show=str)
        log.info("Traefik chart %s installed; Gateways answer at %s", TRAEFIK_CHART_VERSION, self.url)

    def url_for(self, namespace: str, gateway: str) -> str:
        """Every Gateway shares Traefik's entryPoint, so the URL does not depend on the Gateway."""
        return self.url

    def stop(self) -> None:
        """Nothing runs on our side; the release goes with the kind cluster."""
