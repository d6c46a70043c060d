"""KubeRay from its release's own manifests: ``ray-operator/config/default`` (CRDs, RBAC, the manager Deployment).

The Go module of each release (and every checkout) carries them, so this works offline
and for unreleased code alike. They are rendered with kustomize through a small overlay
of ours, the way a user would customize them: our namespace and the operator image we
run. The incremental-upgrade feature gate is then merged into the Deployment's own
``--feature-gates`` (the release already sets others there).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.cache import cache_root
from pytest_kuberay._support.yaml_io import load_all
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.kuberay import INCREMENTAL_UPGRADE_GATE, wait_crds_established
from pytest_kuberay.install.operator import InClusterOperator
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import ensure_managed_namespace
from pytest_kuberay.versions import KubeRayVersion

__all__ = [
    "OPERATOR_DEPLOYMENT",
    "OPERATOR_POD_SELECTOR",
    "enable_feature_gate",
    "install_release_manifests",
    "render_release_manifests",
    "running_operator_image",
]

log = logging.getLogger(__name__)

OPERATOR_DEPLOYMENT = "kuberay-operator"
#: The labels config/manager gives the operator's pods.
OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=kuberay,app.kubernetes.io/component=kuberay-operator"
_GATES_FLAG = "--feature-gates="


def enable_feature_gate(args: Sequence[str], gate: str) -> list[str]:
    """One ``--feature-gates=`` argument holding the release's gates plus ``gate=true`` (pure)."""
    gates: dict[str, str] = {}
    rest: list[str] = []
    for arg in args:
        if arg.startswith(_GATES_FLAG):
            for item in arg[len(_GATES_FLAG):].split(","):
                name, _, value = item.strip().partition("=")
                if name:
                    gates[name] = value or "true"
        else:
            rest.append(arg)
    gates[gate] = "true"
    return [*rest, _GATES_FLAG + ",".join(f"{name}={value}" for name, value in gates.items())]


def _operator_container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    for doc in manifests:
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == OPERATOR_DEPLOYMENT:
            return dict(doc["spec"]["template"]["spec"]["containers"][0])
    raise ProviderError(f"the release manifests hold no Deployment {OPERATOR_DEPLOYMENT}")


def render_release_manifests(config_dir: Path, *, namespace: str, image: str, kustomize: Path,
                             cpu_limit: bool = True) -> list[dict[str, Any]]:
    """``kustomize build`` of an overlay on ``config_dir/default``: our namespace and image, the gate on.

    ``cpu_limit=False`` drops the Deployment's CPU limit (its request stays): see the local provider.
    """
    if not (config_dir / "default" / "kustomization.yaml").is_file():
        raise ProviderError(f"{config_dir} has no default/kustomization.yaml: not a KubeRay ray-operator/config")
    repository, _, tag = image.rpartition(":")
    overlay_text = yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["release/default"],
        "images": [{"name": "quay.io/kuberay/operator", "newName": repository, "newTag": tag},
                   {"name": "kuberay/operator", "newName": repository, "newTag": tag}],
    }, sort_keys=False)
    manifests = copy.deepcopy(_kustomize_build(config_dir, overlay_text, kustomize))
    container = _operator_container(manifests)
    if container.get("image") != image:
        raise ProviderError(f"the release manifests' operator image is {container.get('image')!r} after our "
                            f"override, not {image!r}: {config_dir}/default names its image differently")
    for doc in manifests:
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == OPERATOR_DEPLOYMENT:
            first = doc["spec"]["template"]["spec"]["containers"][0]
            first["args"] = enable_feature_gate(first.get("args") or [], INCREMENTAL_UPGRADE_GATE)
            if not cpu_limit:
                (first.get("resources") or {}).get("limits", {}).pop("cpu", None)
    return manifests


def running_operator_image(cluster: ClusterHandle, namespace: str) -> str | None:
    """The image of the operator Deployment we installed in ``namespace`` before, if any."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        deployment = client.AppsV1Api(cluster.api_client).read_namespaced_deployment(OPERATOR_DEPLOYMENT, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    spec = deployment.spec.template.spec if deployment.spec else None
    return str(spec.containers[0].image) if spec and spec.containers else None


def _tree_digest(*parts: str | bytes, root: Path) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _kustomize_build(config_dir: Path, overlay_text: str, kustomize: Path) -> list[dict[str, Any]]:
    """``kustomize build`` of our overlay, remembered in the user cache by a hash of every input.

    A release's manifests never change, and rendering them (megabytes of CRDs) took about 10 s of
    CPU per session; a checkout's edits change the hash and render again.
    """
    key = _tree_digest(overlay_text, str(kustomize), root=config_dir)
    cached = cache_root() / "kustomize" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        rendered: list[dict[str, Any]] = json.loads(cached.read_text())
        return rendered
    with tempfile.TemporaryDirectory(prefix="kuberay-overlay-") as tmp:
        overlay = Path(tmp)
        (overlay / "release").symlink_to(config_dir, target_is_directory=True)
        (overlay / "kustomization.yaml").write_text(overlay_text)
        proc = subprocess.run([str(kustomize), "build", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
                              capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ProviderError(f"kustomize could not render {config_dir}/default: {proc.stderr.strip()[-1500:]}")
    manifests = load_all(proc.stdout)
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = cached.with_name(f".{cached.name}.{os.getpid()}")
        tmp_file.write_text(json.dumps(manifests))
        os.replace(tmp_file, cached)
    return manifests


def install_release_manifests(cluster: ClusterHandle, version: KubeRayVersion, config_dir: Path, *, image: str,
                              namespace: str, kustomize: Path, log_dir: Path, timeout: float,
                              remove_on_stop: bool = True, apply_crds: bool = True,
                              cpu_limit: bool = True, wait: bool = True) -> InClusterOperator:
    """Apply the rendered manifests and wait for the operator; ``stop()`` removes all but the CRDs.

    ``apply_crds=False`` leaves CRDs someone else installed (or we applied already) untouched.
    ``wait=False`` waits in the background: the operator's ``ready()`` joins that wait.
    """
    started = time.monotonic()
    manifests = render_release_manifests(config_dir, namespace=namespace, image=image, kustomize=kustomize,
                                         cpu_limit=cpu_limit)
    crds = [m for m in manifests if m["kind"] == "CustomResourceDefinition"]
    others = [m for m in manifests if m["kind"] != "CustomResourceDefinition"]
    if apply_crds:
        apply_manifests(cluster.dynamic, crds)
        wait_crds_established(cluster, [m["metadata"]["name"] for m in crds])
    ensure_managed_namespace(cluster, namespace)
    apply_manifests(cluster.dynamic, others)

    def uninstall() -> None:
        _delete(cluster, others)

    operator = InClusterOperator(cluster, version, namespace, OPERATOR_POD_SELECTOR, log_dir,
                                 uninstall=uninstall if remove_on_stop else None)
    if not wait:
        return operator.wait_ready_in_background(timeout, started=started)
    try:
        operator.wait_ready(timeout, started=started)
    except BaseException:
        operator.stop()
        raise
    return operator


def _delete(cluster: ClusterHandle, manifests: list[dict[str, Any]]) -> None:
    """Delete what we applied (CRDs excepted: deleting one deletes every object of its kind), pods first."""
    from kubernetes.client.exceptions import ApiException

    for manifest in sorted(manifests, key=lambda m: m["kind"] != "Deployment"):
        resource = cluster.dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        meta = manifest["metadata"]
        try:
            resource.delete(name=meta["name"], namespace=meta.get("namespace") if resource.namespaced else None,
                            body={"propagationPolicy": "Foreground"} if manifest["kind"] == "Deployment" else None)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete %s/%s: %s", manifest["kind"], meta["name"], exc.reason)
