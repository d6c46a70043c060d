"""Per-test namespaces: created labelled as ours, deleted and waited for, never someone else's."""

from __future__ import annotations

from typing import Any

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.providers.base import ClusterHandle

__all__ = ["MANAGED_LABEL", "create_namespace", "delete_namespace", "ensure_managed_namespace"]

MANAGED_LABEL = {"app.kubernetes.io/managed-by": "pytest-kuberay"}


def create_namespace(cluster: ClusterHandle, name: str) -> None:
    cluster.core.create_namespace({"metadata": {"name": name, "labels": MANAGED_LABEL}})


def _gone(cluster: ClusterHandle, name: str) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return cluster.core.read_namespace(name).status.phase
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete_namespace(cluster: ClusterHandle, name: str, timeout: float) -> None:
    """Delete a namespace we created and wait until it is gone (its pods included).

    On a cluster that is discarded at the end of the session (a local cluster not kept) the
    deletion is not waited for: the pods stop in the background while the next test starts,
    and whatever is left goes with the cluster.
    """
    from kubernetes.client.exceptions import ApiException

    namespace = cluster.core.read_namespace(name)
    if (namespace.metadata.labels or {}).get("app.kubernetes.io/managed-by") != "pytest-kuberay":
        raise RuntimeError(f"refusing to delete namespace {name}: it is not labelled as created by pytest-kuberay")
    try:
        cluster.core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    if cluster.discarded_at_exit:
        return
    eventually(lambda: _gone(cluster, name), lambda phase: phase is None, timeout=timeout, interval=1.0,
               description=f"namespace {name} deleted", show=lambda phase: f"phase {phase}")


def ensure_managed_namespace(cluster: ClusterHandle, name: str) -> bool:
    """Create ``name`` labelled as ours unless it exists; True when we created it."""
    from kubernetes.client.exceptions import ApiException

    try:
        cluster.core.read_namespace(name)
        return False
    except ApiException as exc:
        if exc.status != 404:
            raise
    cluster.core.create_namespace({"metadata": {"name": name, "labels": dict(MANAGED_LABEL)}})
    return True
