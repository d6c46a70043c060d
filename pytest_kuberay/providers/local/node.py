"""The local cluster's node: the node agent run as its own process, so pods outlive no crash of pytest.

The agent registers a Node, binds pods to it and runs their containers as
processes in per-pod network and mount namespaces. On SIGTERM it tears all of
them down; after a crash ``--reap`` removes what it left.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.local.control_plane import LocalControlPlane
from pytest_kuberay.providers.local.processes import ManagedProcess, ProcessFactory, wait_until

__all__ = ["NODE_NAME", "NodeAgentProcess"]

log = logging.getLogger(__name__)

NODE_NAME = "pytest-kuberay-node"
_AGENT = "pytest_kuberay.providers.local.node_agent"


class NodeAgentProcess:
    """Start, wait for and stop the node agent of one local cluster."""

    def __init__(self, control_plane: LocalControlPlane, handle: ClusterHandle, run_dir: Path,
                 spawn: ProcessFactory = ManagedProcess) -> None:
        self.control_plane = control_plane
        self.handle = handle
        self.dir = run_dir / "node-agent"
        self.spawn = spawn
        self.process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.dir.parent / "node-agent.log"

    def start(self, timeout: float = 60.0) -> None:
        network = self.control_plane.network
        argv = [
            sys.executable, "-m", _AGENT,
            "--kubeconfig", str(self.control_plane.kubeconfig),
            "--node-name", NODE_NAME,
            "--bridge", network.name,
            "--cidr", str(network.cidr),
            "--gateway-ip", network.gateway_ip,
            "--run-dir", str(self.dir),
            "--api-host", network.gateway_ip,
            "--api-port", str(self.control_plane.api_port),
            "--python-env", sys.prefix,
        ]
        self.process = self.spawn("node-agent", argv, self.log_path, None)
        self.process.start()
        wait_until(self._node_ready, timeout=timeout, what=f"Node {NODE_NAME} Ready", processes=[self.process])
        log.info("node agent running (pid %s), node %s Ready", self.process.pid, NODE_NAME)

    def _node_ready(self) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            node = self.handle.core.read_node(NODE_NAME)
        except ApiException:
            return False
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    def stop(self, grace: float = 90.0) -> None:
        """SIGTERM lets the agent delete every pod's processes, namespaces and mounts; then reap what is left."""
        if self.process is not None:
            self.process.stop(grace=grace)
            self.process = None
        if self.dir.exists():
            subprocess.run([sys.executable, "-m", _AGENT, "--reap", str(self.dir)], check=False,
                           capture_output=True, timeout=120)
