"""The node agent's settings, from its command line."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ALLOCATABLE", "AgentConfig"]

#: What the node offers the scheduler and resourceFieldRefs: large, logical, not the machine's.
ALLOCATABLE: dict[str, str] = {"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs to know about its node and cluster."""

    kubeconfig: Path
    node_name: str
    bridge: str
    cidr: str
    gateway_ip: str
    agent_dir: Path
    api_host: str
    api_port: int
    python_env: Path
    bind_pods: bool = True
    max_grace_seconds: float = 30.0
    restart_backoff_seconds: float = 1.0
    max_restart_backoff_seconds: float = 60.0
    lease_seconds: float = 10.0
    allocatable: dict[str, str] = field(default_factory=lambda: dict(ALLOCATABLE))

    @property
    def prefix_len(self) -> int:
        """The pod CIDR's prefix length."""
        return ipaddress.IPv4Network(self.cidr).prefixlen

    @property
    def pods_dir(self) -> Path:
        """Parent of the pod directories."""
        return self.agent_dir / "pods"

    @property
    def logs_dir(self) -> Path:
        """Container logs, one directory per pod; kept after pods are deleted, for artifacts."""
        return self.agent_dir / "pod-logs"

    def service_env(self) -> dict[str, str]:
        """The ``kubernetes`` Service's variables, pointing at the API server's bridge address."""
        host, port = self.api_host, str(self.api_port)
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_PORT": port,
            f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
        }
