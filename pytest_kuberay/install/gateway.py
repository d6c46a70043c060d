"""Gateway API: the standard CRDs, and a real gateway controller that sets Gateway/HTTPRoute statuses.

Without a controller that marks the Gateway Programmed and the HTTPRoute
Accepted/ResolvedRefs, KubeRay's incremental upgrade stalls. On the local
provider Traefik runs as a process with its Kubernetes Gateway provider; its
``web`` entryPoint listens on port 80 of the cluster's bridge, so the host
reaches the Gateway directly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pytest_kuberay._support.apply import apply_manifests, load_manifests
from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, free_port, http_ok, wait_until
from pytest_kuberay._support.toolchain import crd_dir, ensure_component
from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.errors import ToolchainError
from pytest_kuberay.install.kuberay import wait_crds_established
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import MANAGED_LABEL

__all__ = ["TRAEFIK_CONTROLLER", "VENDORED_GATEWAY_API_DIR", "TraefikGateway", "gateway_api_crd_dir", "gateway_class",
           "install_gateway_api"]

log = logging.getLogger(__name__)

TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"


#: Our copy of the pinned Gateway API standard CRDs, for machines without Go (kind, existing clusters).
VENDORED_GATEWAY_API_DIR = data_dir("manifests") / "gateway-api-v1.4.1-standard"


def gateway_api_crd_dir() -> Path:
    """The Gateway API standard CRDs from the Go module cache (the pinned version), else our vendored copy."""
    try:
        return crd_dir("gateway-api")
    except ToolchainError as exc:
        log.info("Gateway API CRDs from %s (module cache unavailable: %s)", VENDORED_GATEWAY_API_DIR, exc)
        return VENDORED_GATEWAY_API_DIR


def install_gateway_api(cluster: ClusterHandle) -> list[str]:
    """The Gateway API standard-channel CRDs (v1.4.x), applied and Established."""
    applied = apply_manifests(cluster.dynamic, load_manifests(gateway_api_crd_dir()))
    wait_crds_established(cluster, [name.split("/", 1)[1] for name in applied])
    return applied


def gateway_class(name: str, controller: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name, "labels": dict(MANAGED_LABEL)},
        "spec": {"controllerName": controller},
    }


class TraefikGateway:
    """Traefik as the Gateway API controller of the local cluster, run as a process."""

    def __init__(self, cluster: ClusterHandle, api_url: str, ca_file: Path, token: str, listen_ip: str,
                 run_dir: Path, class_name: str = "traefik", spawn: ProcessFactory = ManagedProcess) -> None:
        self.spawn = spawn
        self.cluster = cluster
        self.api_url, self.ca_file, self.token = api_url, ca_file, token
        self.listen_ip = listen_ip
        self.run_dir = run_dir
        self.class_name = class_name
        self.process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / "traefik.log"

    @property
    def url(self) -> str:
        """Where the Gateway's port-80 listener answers from the host."""
        return f"http://{self.listen_ip}:80"

    def start(self, timeout: float = 60.0) -> None:
        binary = ensure_component("traefik")
        ping_port = free_port()
        # Traefik takes its static config from one source only; the environment keeps the token out of `ps`.
        env = {
            "TRAEFIK_ENTRYPOINTS_WEB_ADDRESS": f"{self.listen_ip}:80",
            "TRAEFIK_ENTRYPOINTS_TRAEFIK_ADDRESS": f"127.0.0.1:{ping_port}",
            "TRAEFIK_PING": "true",
            "TRAEFIK_LOG_LEVEL": "INFO",
            "TRAEFIK_PROVIDERS_KUBERNETESGATEWAY": "true",
            "TRAEFIK_PROVIDERS_KUBERNETESGATEWAY_ENDPOINT": self.api_url,
            "TRAEFIK_PROVIDERS_KUBERNETESGATEWAY_TOKEN": self.token,
            "TRAEFIK_PROVIDERS_KUBERNETESGATEWAY_CERTAUTHFILEPATH": str(self.ca_file),
            "TRAEFIK_PROVIDERS_KUBERNETESGATEWAY_STATUSADDRESS_IP": self.listen_ip,
        }
        self.process = self.spawn("traefik", [str(binary)], self.log_path, env)
        self.process.start()

        wait_until(lambda: http_ok(f"http://127.0.0.1:{ping_port}/ping"), timeout=timeout, what="Traefik /ping",
                   processes=[self.process])
        apply_manifests(self.cluster.dynamic, [gateway_class(self.class_name, TRAEFIK_CONTROLLER)])
        wait_until(self._class_accepted, timeout=timeout,
                   what=f"GatewayClass {self.class_name} Accepted by Traefik", processes=[self.process])
        log.info("Traefik gateway controller running (pid %s), GatewayClass %s", self.process.pid, self.class_name)

    def _class_accepted(self) -> bool:
        obj = self.cluster.custom.get_cluster_custom_object(
            "gateway.networking.k8s.io", "v1", "gatewayclasses", self.class_name)
        conditions = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}
        return conditions.get("Accepted") == "True"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
