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

from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, http_ok, wait_until
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


class KubeProxy:
    def __init__(self, binary: Path, root: Path, kubeconfig: Path, *, node_name: str, node_ip: str,
                 pod_cidr: IPv4Network, namespaces: NodeNamespaces, spawn: ProcessFactory) -> None:
        self.binary = binary
        self.root = root
        self.config = kube_proxy_config(kubeconfig=kubeconfig, node_name=node_name, node_ip=node_ip,
                                        pod_cidr=pod_cidr)
        self.node_ip = node_ip
        self.namespaces = namespaces
        self.spawn = spawn
        self.process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "kube-proxy.log"

    def start(self) -> KubeProxy:
        self.root.mkdir(parents=True, exist_ok=True)
        config_path = self.root / "kube-proxy.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        argv = self.namespaces.wrap_net([str(self.binary), f"--config={config_path}", "--v=1"])
        self.process = self.spawn("kube-proxy", argv, self.log_path, None).start()
        return self

    def wait_ready(self, timeout: float) -> None:
        """/healthz answers 200 once kube-proxy has synced its rules with the API server."""
        assert self.process is not None
        wait_until(lambda: http_ok(f"http://{self.node_ip}:{HEALTHZ_PORT}/healthz"), timeout=timeout,
                   what="kube-proxy /healthz (rules synced)", processes=[self.process])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5.0)
            self.process = None
