"""What every provider hands to the layers above: one cluster handle.

Suites do not care whether kind, the Docker-free local cluster or an existing
cluster is underneath; they get a kubeconfig and API clients from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

__all__ = ["ClusterHandle"]


@dataclass
class ClusterHandle:
    """A reachable Kubernetes cluster and how to talk to it."""

    name: str
    provider: str  # kind | local | existing
    kubeconfig: Path
    context: str | None = None
    default_gateway_class: str = "istio"
    log_files: dict[str, Path] = field(default_factory=dict)  # component -> log, collected on failure
    #: The whole cluster goes away at the end of the session (a local cluster that is not kept):
    #: cleaning up inside it need not be waited for.
    discarded_at_exit: bool = False

    @cached_property
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster's kubeconfig (never the process-wide default)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)

    @cached_property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @cached_property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    @cached_property
    def dynamic(self) -> Any:
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self.api_client)
