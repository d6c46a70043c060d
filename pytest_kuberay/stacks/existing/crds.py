"""Only what is missing is added, and only what we added is removed: CRDs on someone else's cluster."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.kuberay import wait_crds_established
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.stacks.existing.discovery import GATEWAY_CLASS_CRD

__all__ = ["GATEWAY_API_NEEDED", "delete_crd_if_unused", "install_missing_crds"]

log = logging.getLogger(__name__)

#: The Gateway API CRDs KubeRay's incremental upgrade uses; others are none of our business.
GATEWAY_API_NEEDED = (GATEWAY_CLASS_CRD, "gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io")


def install_missing_crds(handle: ClusterHandle, manifests: Iterable[dict[str, Any]],
                         present: Mapping[str, Any]) -> list[str]:
    """Apply the CRDs of ``manifests`` the cluster lacks and wait until they are Established; their names."""
    missing = [m for m in manifests if m["metadata"]["name"] not in present]
    if not missing:
        return []
    applied = apply_manifests(handle.dynamic, missing)
    wait_crds_established(handle, [a.split("/", 1)[1] for a in applied])
    return applied


def delete_crd_if_unused(handle: ClusterHandle, name: str, timeout: float) -> None:
    """Remove a CRD we created once no object of its kind is left (then deleting it deletes nothing else)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.ApiextensionsV1Api(handle.api_client)
    try:
        crd = handle.api_client.sanitize_for_serialization(api.read_custom_resource_definition(name))
        left = custom_objects(handle, crd)
        if left:
            log.info("keeping CRD %s that pytest-kuberay created: %d objects of its kind exist", name, left)
            return
        api.delete_custom_resource_definition(name)
        # deletion finishes asynchronously (the CRD's cleanup finalizer): the run ends when it is gone
        wait_for(lambda: crd_exists(api, name), lambda exists: not exists, timeout=timeout,
                 description=f"CRD {name} deleted", interval=0.5)
    except ApiException as exc:
        if exc.status != 404:
            log.warning("could not delete CRD %s that pytest-kuberay created: %s", name, exc.reason)
    except ProviderError as exc:
        log.warning("%s", exc)


def crd_exists(api: Any, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        api.read_custom_resource_definition(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def custom_objects(handle: ClusterHandle, crd: dict[str, Any]) -> int:
    """How many objects of a CRD's kind exist, cluster-wide (its storage version)."""
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    return len(handle.custom.list_cluster_custom_object(spec["group"], version, spec["names"]["plural"])["items"])
