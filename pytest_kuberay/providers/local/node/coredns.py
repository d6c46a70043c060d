"""CoreDNS for ``cluster.local``, in the node's network namespace on the node IP.

Pods get it as their nameserver (kubelet's ``clusterDNS``), so ``<svc>.<ns>.svc.cluster.local``
resolves as on any cluster: KubeRay's workers join their head by its Service name. Names
outside the cluster are not forwarded anywhere (this machine has no upstream DNS), so they
fail at once instead of timing out.

CoreDNS reads Services and EndpointSlices as user ``system:coredns`` (a client
certificate), with the same ClusterRole kubeadm gives it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, http_ok, wait_until
from pytest_kuberay.providers.local.node.namespaces import NodeNamespaces

__all__ = ["COREDNS_USER", "CoreDNS", "coredns_rbac", "corefile"]

log = logging.getLogger(__name__)

COREDNS_USER = "system:coredns"
READY_PORT = 8181


def corefile(*, node_ip: str, kubeconfig: Path, cluster_domain: str = "cluster.local") -> str:
    return f""".:53 {{
    bind {node_ip}
    errors
    ready {node_ip}:{READY_PORT}
    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def coredns_rbac() -> list[dict[str, Any]]:
    """ClusterRole ``system:coredns`` (as kubeadm defines it) bound to the CoreDNS user."""
    labels = {"app.kubernetes.io/managed-by": "pytest-kuberay"}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns", "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}],
        },
    ]


class CoreDNS:
    def __init__(self, binary: Path, root: Path, kubeconfig: Path, *, node_ip: str, namespaces: NodeNamespaces,
                 spawn: ProcessFactory) -> None:
        self.binary = binary
        self.root = root
        self.kubeconfig = kubeconfig
        self.node_ip = node_ip
        self.namespaces = namespaces
        self.spawn = spawn
        self.process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "coredns.log"

    def start(self) -> CoreDNS:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "Corefile"
        path.write_text(corefile(node_ip=self.node_ip, kubeconfig=self.kubeconfig))
        argv = self.namespaces.wrap_net([str(self.binary), "-conf", str(path)])
        self.process = self.spawn("coredns", argv, self.log_path, None).start()
        return self

    def wait_ready(self, timeout: float) -> None:
        """``/ready`` answers 200 once the kubernetes plugin has synced with the API server."""
        assert self.process is not None
        wait_until(lambda: http_ok(f"http://{self.node_ip}:{READY_PORT}/ready"), timeout=timeout,
                   what="CoreDNS /ready", processes=[self.process])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5.0)
            self.process = None
