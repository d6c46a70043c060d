"""Start the node agent as a supervised process next to a :class:`LocalControlPlane`, and stop it cleanly.

The agent runs in its own process (``python -m pytest_kuberay.providers.local.node_agent``)
so that its threads, pods and signal handling never mix with pytest's. Stopping sends
SIGTERM and waits for the agent to tear every pod down and exit on its own.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from pytest_kuberay.providers.local.node_agent.kube import ApiError, KubeClient, KubeCredentials
from pytest_kuberay.providers.local.node_agent.state import reap
from pytest_kuberay.providers.local.processes import ManagedProcess, wait_until

if TYPE_CHECKING:
    from pytest_kuberay.providers.local.control_plane import LocalControlPlane
    from pytest_kuberay.providers.local.run_registry import RunRecord

__all__ = ["NodeAgentProcess"]

log = logging.getLogger(__name__)


class NodeAgentProcess:
    """One node agent for one control plane, started and stopped by PID."""

    def __init__(
        self,
        control_plane: LocalControlPlane,
        *,
        node_name: str = "local-node",
        agent_dir: Path | None = None,
        python_env: Path | None = None,
        run: RunRecord | None = None,
        die_with_parent: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.control_plane = control_plane
        self.node_name = node_name
        self.agent_dir = agent_dir or control_plane.run_dir / "node-agent"
        self.python_env = python_env or Path(sys.prefix)
        self.run = run
        self.log_path = self.agent_dir / "node-agent.log"
        network = control_plane.network
        if control_plane.api_port is None:
            raise RuntimeError("start the control plane before its node agent")
        argv = [
            sys.executable, "-m", "pytest_kuberay.providers.local.node_agent",
            "--kubeconfig", str(control_plane.kubeconfig),
            "--node-name", node_name,
            "--bridge", network.name,
            "--cidr", str(network.cidr),
            "--gateway-ip", network.gateway_ip,
            "--run-dir", str(self.agent_dir),
            "--api-host", network.gateway_ip,
            "--api-port", str(control_plane.api_port),
            "--python-env", str(self.python_env),
            *extra_args,
        ]  # fmt: skip
        env = None
        if run is not None:
            from pytest_kuberay.providers.local.run_registry import marker_env

            env = marker_env(run.run_id)
        self.process = ManagedProcess("node-agent", argv, self.log_path, env=env, die_with_parent=die_with_parent)

    def start(self, timeout: float = 60.0) -> NodeAgentProcess:
        """Start the agent and wait until its Node is Ready."""
        self.agent_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()
        if self.run is not None:
            self.run.add_process(self.process)
        kube = KubeClient(KubeCredentials.from_kubeconfig(self.control_plane.kubeconfig, self.agent_dir / "launcher"))

        def node_ready() -> bool:
            node = kube.get(f"/api/v1/nodes/{self.node_name}")
            conditions = node.get("status", {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

        try:
            wait_until(node_ready, timeout=timeout, what=f"node {self.node_name} to be Ready", processes=[self.process])
        except BaseException:
            self.stop()
            raise
        finally:
            kube.close()
        return self

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait for the agent to tear its pods down, then reap anything a stuck agent left."""
        code = self.process.stop(grace=timeout)
        if self.run is not None:
            self.run.forget_processes([self.process.pid])
        for item in reap(self.agent_dir):
            log.warning("node agent left %s; removed it", item)
        return code

    def delete_node(self) -> None:
        """Remove the Node object (the agent leaves it, like a kubelet that stops)."""
        kube = KubeClient(KubeCredentials.from_kubeconfig(self.control_plane.kubeconfig, self.agent_dir / "launcher"))
        try:
            kube.delete(f"/api/v1/nodes/{self.node_name}")
        except (ApiError, httpx.HTTPError) as exc:
            log.info("deleting node %s: %s", self.node_name, exc)
        finally:
            kube.close()
