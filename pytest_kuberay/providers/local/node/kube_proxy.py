"""kube-proxy in iptables mode, inside the node's network namespace: Services and ClusterIPs work.

Its rules live in the node namespace, so they never touch the host's iptables and vanish
with the namespace. Conntrack sysctls are left alone (``maxPerCore: 0`` and zero
timeouts): they are per-machine settings a test run has no business changing.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.processes import ProcessFactory
from pytest_kuberay.providers.local.node.component import NodeComponent
from pytest_kuberay.providers.local.node.namespaces import NodeNamespaces

__all__ = ["KubeProxy", "kube_proxy_config"]

log = logging.getLogger(__name__)

HEALTHZ_PORT = 10256


def kube_proxy_config(*, kubeconfig: Path, node_name: str, node_ip: str, pod_cidr: IPv4Network) -> dict[str, Any]:
    """A KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) for iptables mode."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "bindAddress": node_ip,
        "healthzBindAddress": f"{node_ip}:{HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "clusterCIDR": str(pod_cidr),
        "oomScoreAdj": 0,
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


class KubeProxy(NodeComponent):
    name = "kube-proxy"

    def __init__(self, binary: Path, root: Path, kubeconfig: Path, *, node_name: str, node_ip: str,
                 pod_cidr: IPv4Network, namespaces: NodeNamespaces, spawn: ProcessFactory) -> None:
        super().__init__(binary, root, namespaces, spawn)
        self.config = kube_proxy_config(kubeconfig=kubeconfig, node_name=node_name, node_ip=node_ip,
                                        pod_cidr=pod_cidr)
        self.node_ip = node_ip

    def start(self) -> KubeProxy:
        self._launch("kube-proxy.yaml", yaml.safe_dump(self.config, sort_keys=False), ["--config={config}", "--v=1"])
        return self

    def wait_ready(self, timeout: float) -> None:
        """/healthz answers 200 once kube-proxy has synced its rules with the API server."""
        self._wait_http_ok(f"http://{self.node_ip}:{HEALTHZ_PORT}/healthz", "kube-proxy /healthz (rules synced)",
                           timeout)
