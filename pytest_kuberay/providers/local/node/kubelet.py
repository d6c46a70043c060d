"""The real kubelet (built from the same Kubernetes module as the control plane) as the node agent.

It authenticates to the API server with a ``system:node:<name>`` client certificate (so
the Node authorizer and NodeRestriction apply), serves TLS with a certificate for its node
IP (the API server dials it there for logs, exec and port-forward), and accepts only
clients the API server vouches for: x509 against the cluster CA or a token, then a
SubjectAccessReview. No anonymous access, no AlwaysAllow.

This machine has cgroup v1 and no systemd, so: ``cgroupDriver: cgroupfs`` and
``failCgroupV1: false``. Every path kubelet writes is under the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.processes import ProcessFactory
from pytest_kuberay.providers.local.node.component import NodeComponent
from pytest_kuberay.providers.local.node.namespaces import KUBELET_ROOT, NodeNamespaces

__all__ = ["Kubelet", "KubeletSettings", "kubelet_config"]

log = logging.getLogger(__name__)

CLUSTER_DOMAIN = "cluster.local"


class KubeletSettings:
    """What kubelet's configuration depends on (everything else is fixed)."""

    def __init__(self, *, node_name: str, node_ip: str, root: Path, ca_cert: Path, serving_cert: Path,
                 serving_key: Path, cgroup_root: str, cluster_dns: str, runtime_endpoint: str) -> None:
        self.node_name = node_name
        self.node_ip = node_ip
        self.root = root
        self.ca_cert = ca_cert
        self.serving_cert = serving_cert
        self.serving_key = serving_key
        self.cgroup_root = cgroup_root
        self.cluster_dns = cluster_dns
        self.runtime_endpoint = runtime_endpoint

    @property
    def resolv_conf(self) -> Path:
        """The "host" resolv.conf pods inherit: no nameserver, so nothing waits on a DNS we cannot reach."""
        return self.root / "resolv.conf"


def kubelet_config(s: KubeletSettings) -> dict[str, Any]:
    """A KubeletConfiguration (kubelet.config.k8s.io/v1beta1) for one local node."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": s.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": s.node_ip,
        "healthzPort": 10248,
        "tlsCertFile": str(s.serving_cert),
        "tlsPrivateKeyFile": str(s.serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(s.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": s.cgroup_root,
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": s.runtime_endpoint,
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [s.cluster_dns],
        "resolvConf": str(s.resolv_conf),
        "podLogsDir": str(s.root / "pod-logs"),
        "oomScoreAdj": 0,  # the default -999 needs CAP_SYS_RESOURCE, which root lacks here
        "registerNode": True,
        "maxPods": 110,
        "serializeImagePulls": False,
        # Images are imported, never pulled: garbage-collecting them would break the next pod.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A test node shares its disk with everything else: evict only when memory really runs out.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "nodeStatusUpdateFrequency": "4s",
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "50Mi",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
    }


class Kubelet(NodeComponent):
    """kubelet inside the node's namespaces (containerd's socket and mounts are there)."""

    name = "kubelet"
    stop_grace = 10.0

    def __init__(self, binary: Path, settings: KubeletSettings, kubeconfig: Path, namespaces: NodeNamespaces,
                 spawn: ProcessFactory) -> None:
        super().__init__(binary, settings.root, namespaces, spawn)
        self.settings = settings
        self.kubeconfig = kubeconfig

    def start(self) -> Kubelet:
        """Start it; readiness is the Node's Ready condition, which the caller waits for."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings.resolv_conf.write_text("# pods of the local provider resolve only cluster names\n")
        process = self._launch("config.yaml", yaml.safe_dump(kubelet_config(self.settings), sort_keys=False), [
            "--config={config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={KUBELET_ROOT}",  # the run's own directory, bound there inside the node namespace
            f"--cert-dir={self.root / 'pki'}",
            f"--hostname-override={self.settings.node_name}",
            f"--node-ip={self.settings.node_ip}",
            "--v=1",
        ], mount_namespace=True)
        log.info("kubelet started (pid %d) for node %s", process.pid, self.settings.node_name)
        return self
