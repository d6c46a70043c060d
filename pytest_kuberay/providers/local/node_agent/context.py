"""What every pod worker shares: settings, API access, the IP pool, the service directory, the state file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pytest_kuberay.providers.local.node_agent.config import AgentConfig
from pytest_kuberay.providers.local.node_agent.events import EventRecorder
from pytest_kuberay.providers.local.node_agent.hosts import ServiceDirectory
from pytest_kuberay.providers.local.node_agent.images import RayVersionCheck
from pytest_kuberay.providers.local.node_agent.kube import ApiError, KubeClient
from pytest_kuberay.providers.local.node_agent.pod_network import IpAllocator
from pytest_kuberay.providers.local.node_agent.state import AgentState

__all__ = ["ApiObjects", "NodeContext"]

JSON = dict[str, Any]

#: Environment every pod process inherits from the agent: the run registry's marker finds them after a crash.
INHERITED_ENV = ("PYTEST_KUBERAY_RUN",)


class ApiObjects:
    """ConfigMaps, Secrets and service-account tokens from the API server (ObjectSource + TokenSource)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def _get(self, path: str) -> JSON | None:
        try:
            return self.kube.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def configmap(self, namespace: str, name: str) -> JSON | None:
        """The ConfigMap, or None."""
        return self._get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    def secret(self, namespace: str, name: str) -> JSON | None:
        """The Secret, or None."""
        return self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    def request_token(
        self, namespace: str, service_account: str, *, audiences: list[str], expiration_seconds: int, pod: JSON
    ) -> tuple[str, float]:
        """A token for ``service_account`` bound to ``pod`` (TokenRequest API), and its lifetime in seconds."""
        spec: JSON = {
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if audiences:
            spec["audiences"] = audiences
        reply = self.kube.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        status = reply.get("status", {})
        # Refresh on the requested lifetime: the API server may extend kube-api-access tokens
        # (3607 s) to a year, but a pod must never depend on that.
        lifetime = float(expiration_seconds)
        return str(status["token"]), lifetime


@dataclass
class NodeContext:
    """Shared by the agent and its pod workers."""

    config: AgentConfig
    kube: KubeClient
    objects: ApiObjects
    events: EventRecorder
    services: ServiceDirectory
    ips: IpAllocator
    state: AgentState
    ray_versions: RayVersionCheck

    def inherited_env(self) -> dict[str, str]:
        """Variables passed from the agent's environment to every pod process."""
        return {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
