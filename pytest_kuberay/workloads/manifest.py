"""Any RayService manifest, checked and prepared for a test: the user's own, not only our echo app.

A user brings a manifest (a file or a dict), their Serve app directories, and the change
they want to roll out. Before anything is applied, each is checked and a mistake gets
one line that says what to fix: no incremental strategy, no autoscaling, an invalid
Serve config, a pair of manifests that would not start an upgrade.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.yaml_io import load_all
from pytest_kuberay.errors import ManifestError, ServeConfigError
from pytest_kuberay.workloads.rayservice import APPS_MOUNT, IncrementalUpgradeOptions
from pytest_kuberay.workloads.serve_config import validate_serve_config

__all__ = [
    "INCREMENTAL_STRATEGY",
    "ManifestEdit",
    "ManifestSource",
    "containers_of",
    "images_of",
    "load_rayservice",
    "mount_apps",
    "prepare_rayservice",
    "starts_an_upgrade",
    "upgrade_options",
    "upgraded_manifest",
]

INCREMENTAL_STRATEGY = "NewClusterWithIncrementalUpgrade"
#: A manifest: a YAML file (path), or the object itself.
ManifestSource = str | Path | Mapping[str, Any]
#: Worker-group fields KubeRay changes in place (scaling), so they never start an upgrade.
_IN_PLACE_WORKER_FIELDS = ("replicas", "minReplicas", "maxReplicas", "scaleStrategy")


def load_rayservice(source: ManifestSource) -> dict[str, Any]:
    """The RayService in ``source`` (a file may hold other documents; exactly one RayService)."""
    if isinstance(source, Mapping):
        docs = [copy.deepcopy(dict(source))]
        where = "the manifest"
    else:
        path = Path(source).expanduser()
        where = str(path)
        try:
            docs = load_all(path.read_text())
        except OSError as exc:
            raise ManifestError(f"cannot read the RayService manifest {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    services = [d for d in docs if isinstance(d, dict) and d.get("kind") == "RayService"]
    if len(services) != 1:
        raise ManifestError(f"{where} must hold exactly one RayService (kind: RayService), found {len(services)}")
    return services[0]


def containers_of(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every container of the head and worker groups."""
    cluster = manifest.get("spec", {}).get("rayClusterConfig", {})
    groups = [cluster.get("headGroupSpec", {}), *cluster.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g.get("template", {}).get("spec", {}).get("containers", [])]


def images_of(manifest: Mapping[str, Any]) -> list[str]:
    """The images the RayService's pods run (the local provider builds and imports them first)."""
    return list(dict.fromkeys(str(c["image"]) for c in containers_of(manifest) if c.get("image")))


def _check(manifest: dict[str, Any], where: str) -> None:
    spec = manifest.get("spec") or {}
    strategy = (spec.get("upgradeStrategy") or {}).get("type")
    if strategy != INCREMENTAL_STRATEGY:
        raise ManifestError(f"{where}: spec.upgradeStrategy.type is {strategy!r}, not {INCREMENTAL_STRATEGY}: "
                            f"set it, with spec.upgradeStrategy.clusterUpgradeOptions (gatewayClassName, "
                            "stepSizePercent, intervalSeconds, maxSurgePercent)")
    if not (spec.get("rayClusterConfig") or {}).get("enableInTreeAutoscaling"):
        raise ManifestError(f"{where}: the incremental upgrade needs spec.rayClusterConfig.enableInTreeAutoscaling: "
                            "true (KubeRay refuses the strategy without it)")
    if not isinstance(spec.get("serveConfigV2"), str) or not spec["serveConfigV2"].strip():
        raise ManifestError(f"{where}: spec.serveConfigV2 must be a Serve config (a YAML string)")
    try:
        validate_serve_config(yaml.safe_load(spec["serveConfigV2"]) or {})
    except ServeConfigError as exc:
        raise ManifestError(f"{where}: spec.serveConfigV2 is not a valid Serve config: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{where}: spec.serveConfigV2 is not YAML: {str(exc).splitlines()[0]}") from None


def mount_apps(manifest: dict[str, Any], apps: Mapping[str, Path]) -> dict[str, Any]:
    """Mount each app's ConfigMap (``serve-app-<name>``) at ``/home/ray/apps/<name>`` in every Ray container.

    The Serve config then names ``file:///home/ray/apps/<name>/<name>.zip`` as the app's working_dir.
    Mounts the manifest already has are left as they are.
    """
    cluster = manifest["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]:
        pod = group["template"]["spec"]
        volumes = pod.setdefault("volumes", [])
        for app in apps:
            if not any(v.get("name") == f"app-{app}" for v in volumes):
                volumes.append({"name": f"app-{app}", "configMap": {"name": f"serve-app-{app}"}})
        for container in pod["containers"]:
            mounts = container.setdefault("volumeMounts", [])
            for app in apps:
                if not any(m.get("mountPath") == f"{APPS_MOUNT}/{app}" for m in mounts):
                    mounts.append({"name": f"app-{app}", "mountPath": f"{APPS_MOUNT}/{app}"})
    return manifest


def prepare_rayservice(source: ManifestSource, *, namespace: str, gateway_class: str, name: str | None = None,
                       max_surge_percent: int | None = None, step_size_percent: int | None = None,
                       interval_seconds: int | None = None, apps: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """The manifest as it will be applied: our namespace, the options asked for, the apps mounted; checked."""
    manifest = load_rayservice(source)
    where = str(source) if not isinstance(source, Mapping) else f"RayService {manifest.get('metadata', {}).get('name')}"
    _check(manifest, where)
    meta = manifest.setdefault("metadata", {})
    meta["namespace"] = namespace
    if name is not None:
        meta["name"] = name
    if not meta.get("name"):
        raise ManifestError(f"{where}: metadata.name is missing")
    options = manifest["spec"]["upgradeStrategy"].setdefault("clusterUpgradeOptions", {})
    options.setdefault("gatewayClassName", gateway_class)
    for key, value in (("maxSurgePercent", max_surge_percent), ("stepSizePercent", step_size_percent),
                       ("intervalSeconds", interval_seconds)):
        if value is not None:
            options[key] = value
    if apps:
        mount_apps(manifest, apps)
    return manifest


def upgrade_options(manifest: Mapping[str, Any]) -> IncrementalUpgradeOptions:
    options = manifest["spec"]["upgradeStrategy"].get("clusterUpgradeOptions") or {}
    return IncrementalUpgradeOptions(gateway_class=str(options.get("gatewayClassName", "")),
                                     max_surge_percent=int(options.get("maxSurgePercent", 100)),
                                     step_size_percent=int(options.get("stepSizePercent", 0)),
                                     interval_seconds=int(options.get("intervalSeconds", 0)))


def _cluster_spec_for_upgrade(manifest: Mapping[str, Any]) -> dict[str, Any]:
    cluster = copy.deepcopy(dict(manifest["spec"]["rayClusterConfig"]))
    for group in cluster.get("workerGroupSpecs", []):
        for key in _IN_PLACE_WORKER_FIELDS:
            group.pop(key, None)
        group.pop("workersToDelete", None)
    return cluster


def starts_an_upgrade(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """True when ``after`` changes the cluster spec beyond scaling: KubeRay then creates a pending cluster.

    A change to ``serveConfigV2`` alone (or to worker replicas) is applied in place.
    """
    return _cluster_spec_for_upgrade(before) != _cluster_spec_for_upgrade(after)


ManifestEdit = Callable[[dict[str, Any]], Any]


def upgraded_manifest(before: Mapping[str, Any], to: ManifestSource | ManifestEdit) -> dict[str, Any]:
    """The manifest to upgrade to: a file or dict (kept in ``before``'s namespace and name), or an edit of a copy.

    A callable gets a copy of ``before`` and edits it in place or returns the new manifest.
    """
    if callable(to) and not isinstance(to, Mapping):
        edited = copy.deepcopy(dict(before))
        result = to(edited)
        after = edited if result is None else load_rayservice(result)
        where = "the edited manifest"
    else:
        after = load_rayservice(to)
        where = str(to) if not isinstance(to, Mapping) else "the new manifest"
    _check(after, where)
    after.setdefault("metadata", {}).update(name=before["metadata"]["name"],
                                            namespace=before["metadata"]["namespace"])
    options = after["spec"]["upgradeStrategy"].setdefault("clusterUpgradeOptions", {})
    options.setdefault("gatewayClassName", before["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]
                       .get("gatewayClassName"))
    return after
