"""The Node object: registration with a large logical allocatable, a Lease renewed every 10 s, Ready status.

Without a renewed Lease and a Ready condition the controller manager's node-lifecycle
controller would taint the node and evict its pods; with them, the control plane may run
every default controller.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from pytest_kuberay.providers.local.node_agent.config import AgentConfig
from pytest_kuberay.providers.local.node_agent.kube import ApiError, KubeClient

__all__ = ["NodeRegistration", "node_object"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
STATUS_EVERY_SECONDS = 60.0


def _now(micro: bool = False) -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def node_status(config: AgentConfig, kubelet_version: str, since: str) -> JSON:
    """The Node's status: capacity, Ready, addresses, system info."""
    now = _now()

    def condition(kind: str, ok: bool, reason: str, message: str) -> JSON:
        return {
            "type": kind,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since,
        }

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "capacity": dict(config.allocatable),
        "allocatable": dict(config.allocatable),
        "conditions": [
            condition("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", True, "KubeletReady", "pytest-kuberay node agent is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.gateway_ip},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"),
            "systemUUID": _read("/etc/machine-id"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": "pytest-kuberay://processes",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch,
        },
    }


def node_object(config: AgentConfig, kubelet_version: str, since: str) -> JSON:
    """The whole Node to create."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": {
                "kubernetes.io/hostname": config.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "node.kubernetes.io/instance-type": "pytest-kuberay-local",
            },
            "annotations": {"pytest-kuberay/agent-pid": str(os.getpid())},
        },
        "spec": {"podCIDR": config.cidr, "podCIDRs": [config.cidr]},
        "status": node_status(config, kubelet_version, since),
    }


class NodeRegistration:
    """Creates (or adopts) the Node and keeps its Lease and Ready status fresh from a thread."""

    def __init__(self, kube: KubeClient, config: AgentConfig) -> None:
        self.kube = kube
        self.config = config
        self.since = _now()
        self.kubelet_version = ""
        self.node_uid = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-heartbeat", daemon=True)

    @property
    def path(self) -> str:
        """The Node's API path."""
        return f"/api/v1/nodes/{self.config.node_name}"

    def register(self) -> None:
        """Create the Node, or take over an existing one of the same name (an agent restart)."""
        try:
            self.kubelet_version = str(self.kube.get("/version").get("gitVersion", "v0.0.0"))
        except (ApiError, httpx.HTTPError):
            self.kubelet_version = "v0.0.0"
        try:
            node = self.kube.post("/api/v1/nodes", node_object(self.config, self.kubelet_version, self.since))
        except ApiError as exc:
            if exc.status != 409:
                raise
            node = self.kube.get(self.path)  # an agent restart: adopt it (podCIDR is immutable once set)
            if node.get("spec", {}).get("podCIDR") not in (None, self.config.cidr):
                log.warning(
                    "node %s already exists with podCIDR %s, not %s",
                    self.config.node_name,
                    node["spec"]["podCIDR"],
                    self.config.cidr,
                )
        self.node_uid = str(node["metadata"]["uid"])
        self.post_status()
        self.renew_lease()
        log.info("node %s registered (Ready, %s)", self.config.node_name, self.kubelet_version)

    def post_status(self) -> None:
        """Patch the Node's status: Ready, with a fresh heartbeat."""
        self.kube.patch(f"{self.path}/status", {"status": node_status(self.config, self.kubelet_version, self.since)})

    def renew_lease(self) -> None:
        """Renew (or create) the Node's Lease in kube-node-lease."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self.config.node_name}"
        spec = {
            "holderIdentity": self.config.node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": _now(micro=True),
        }
        try:
            lease = self.kube.get(path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name, "uid": self.node_uid}
            self.kube.post(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.config.node_name, "ownerReferences": [owner]},
                    "spec": spec,
                },
            )
            return
        lease["spec"] = {**lease.get("spec", {}), **spec}
        self.kube.put(path, lease)

    def start(self) -> NodeRegistration:
        """Renew the Lease every ``lease_seconds`` and post status every minute, until stopped."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the heartbeat."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        ticks = 0
        every = max(1, round(STATUS_EVERY_SECONDS / self.config.lease_seconds))
        while not self._stop.wait(self.config.lease_seconds):
            ticks += 1
            try:
                self.renew_lease()
                if ticks % every == 0:
                    self.post_status()
            except ApiError as exc:
                if exc.status == 404 and "nodes" in str(exc):
                    log.warning("node %s was deleted; registering it again", self.config.node_name)
                    self._reregister()
                else:
                    log.warning("node heartbeat failed: %s", exc)
            except (httpx.HTTPError, OSError) as exc:
                log.warning("node heartbeat failed: %s", exc)

    def _reregister(self) -> None:
        try:
            self.register()
        except (ApiError, httpx.HTTPError, OSError) as exc:
            log.warning("registering node %s again failed: %s", self.config.node_name, exc)
