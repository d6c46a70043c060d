"""The pod network: the CNI bridge plugin on the node's own bridge, addresses from the run's pod CIDR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_kuberay.providers.local.network import NodeNetwork

__all__ = ["BRIDGE_NAME", "NETWORK_NAME", "cni_conflist", "write_cni_config"]

NETWORK_NAME = "pytest-kuberay"
#: Lives in the node's network namespace, so every run can use the same name.
BRIDGE_NAME = "cni0"


def cni_conflist(network: NodeNetwork, ipam_dir: Path) -> dict[str, Any]:
    """bridge + host-local (+ portmap for hostPort): pods get IPs from ``network.pod_cidr``.

    ``hairpinMode`` lets a pod reach itself through a Service; host-local keeps its lease
    files under the run directory instead of ``/var/lib/cni``.
    """
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE_NAME,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": str(network.pod_cidr), "gateway": network.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_cni_config(conf_dir: Path, network: NodeNetwork, ipam_dir: Path) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / f"10-{NETWORK_NAME}.conflist"
    path.write_text(json.dumps(cni_conflist(network, ipam_dir), indent=2) + "\n")
    return path
