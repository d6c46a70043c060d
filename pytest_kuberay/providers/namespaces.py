"""Per-test namespaces: created labelled as ours, deleted and waited for, never someone else's."""

from __future__ import annotations

from typing import Any

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.providers.base import ClusterHandle

__all__ = ["MANAGED_LABEL", "MANAGED_SELECTOR", "create_namespace", "delete_namespace", "ensure_managed_namespace",
           "is_ours"]

MANAGED_LABEL = {"app.kubernetes.io/managed-by": "pytest-kuberay"}
#: The same label as a selector.
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=pytest-kuberay"


def is_ours(labels: dict[str, str] | None) -> bool:
    """True for an object pytest-kuberay created (it carries our managed-by label)."""
    return (labels or {}).get("app.kubernetes.io/managed-by") == MANAGED_LABEL["app.kubernetes.io/managed-by"]


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
    if not is_ours(namespace.metadata.labels):
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


def ensure_managed_namespace(cluster: ClusterHandle, name: str, *, require_ours: bool = False) -> bool:
    """Create ``name`` labelled as ours unless it exists; True when we created it.

    ``require_ours``: an existing namespace without our label is someone else's, and a ProviderError.
    """
    from kubernetes.client.exceptions import ApiException

    from pytest_kuberay.errors import ProviderError

    try:
        namespace = cluster.core.read_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        cluster.core.create_namespace({"metadata": {"name": name, "labels": dict(MANAGED_LABEL)}})
        return True
    if require_ours and not is_ours(namespace.metadata.labels):
        raise ProviderError(f"namespace {name} exists and is not labelled app.kubernetes.io/managed-by="
                            "pytest-kuberay: it is someone else's; pytest-kuberay will not install into it")
    return False
