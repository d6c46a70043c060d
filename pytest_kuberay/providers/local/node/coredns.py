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

from pytest_kuberay._support.processes import ProcessFactory
from pytest_kuberay.providers.local.node.component import NodeComponent
from pytest_kuberay.providers.local.node.namespaces import NodeNamespaces
from pytest_kuberay.providers.namespaces import MANAGED_LABEL

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
    labels = dict(MANAGED_LABEL)
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


class CoreDNS(NodeComponent):
    name = "coredns"

    def __init__(self, binary: Path, root: Path, kubeconfig: Path, *, node_ip: str, namespaces: NodeNamespaces,
                 spawn: ProcessFactory) -> None:
        super().__init__(binary, root, namespaces, spawn)
        self.kubeconfig = kubeconfig
        self.node_ip = node_ip

    def start(self) -> CoreDNS:
        self._launch("Corefile", corefile(node_ip=self.node_ip, kubeconfig=self.kubeconfig), ["-conf", "{config}"])
        return self

    def wait_ready(self, timeout: float) -> None:
        """``/ready`` answers 200 once the kubernetes plugin has synced with the API server."""
        self._wait_http_ok(f"http://{self.node_ip}:{READY_PORT}/ready", "CoreDNS /ready", timeout)
