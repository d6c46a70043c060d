"""The local provider as the suites see it: cluster + Gateway API + Traefik, and KubeRay on request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_kuberay.install.gateway import TraefikGateway, install_gateway_api_crds
from pytest_kuberay.install.kuberay import OperatorProcess, install_kuberay_crds
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.local.cluster import LocalCluster, local_cluster
from pytest_kuberay.providers.local.node_agent.launcher import NodeAgentProcess
from pytest_kuberay.settings import Settings
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["LocalStack", "local_stack"]

log = logging.getLogger(__name__)


def gateway_listen_ip(bridge_index: int) -> str:
    """A loopback address per local cluster for Traefik's port-80 entryPoint.

    Traffic tests then only ever send to loopback, and two local clusters never fight over port 80.
    """
    return f"127.77.{bridge_index}.1"


@dataclass
class LocalStack:
    cluster: LocalCluster
    gateway: TraefikGateway
    node: NodeAgentProcess

    @property
    def handle(self) -> ClusterHandle:
        return self.cluster.handle

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    def install_kuberay(self, version: KubeRayVersion, source: Path | None = None) -> OperatorProcess:
        """Apply this version's CRDs and start its operator (built from the Go module, or ``source``)."""
        install_kuberay_crds(self.handle, version)
        operator = OperatorProcess(version, self.handle.kubeconfig, self.cluster.run_dir, source=source,
                                   spawn=self.cluster.process)
        operator.start()
        self.handle.log_files["kuberay-operator"] = operator.log_paths[-1]
        return operator


@contextmanager
def local_stack(settings: Settings, run_pods: bool = True) -> Iterator[LocalStack]:
    """Control plane, Gateway API with Traefik, and (with ``run_pods``) the node agent that runs pods."""
    with local_cluster(timeout=settings.timeout(120),
                       keep_logs_in=settings.artifacts_dir / "local-cluster") as cluster:
        install_gateway_api_crds(cluster.handle)
        control_plane = cluster.control_plane
        node = NodeAgentProcess(control_plane, run=cluster.run)
        listen_ip = gateway_listen_ip(control_plane.network.index)
        gateway = TraefikGateway(cluster.handle, control_plane.api_url, control_plane.ca_file,
                                 control_plane.admin_token, listen_ip, cluster.run_dir,
                                 class_name=settings.gateway_class or "traefik", spawn=cluster.process)
        started_node = False
        try:
            if run_pods:
                node.start(timeout=settings.timeout(60))
                started_node = True
                cluster.handle.log_files["node-agent"] = node.log_path
            gateway.start(timeout=settings.timeout(60))
            cluster.handle.log_files["traefik"] = gateway.log_path
            yield LocalStack(cluster, gateway, node)
        finally:
            gateway.stop()
            if started_node:
                node.stop()
