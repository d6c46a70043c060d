"""RayService manifests for the suites, and the changes that trigger an upgrade.

A suite says *what* changes (``cluster_change="worker-cpu"``,
``serve_change="user-config"``); this module knows how that looks in a
RayService spec. The base manifest lives in ``manifests/`` so structural
choices are reviewable as YAML.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.utils import parse_quantity

from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.providers.namespaces import MANAGED_LABEL
from pytest_kuberay.workloads.serve_apps import SERVE_APPS_DIR, app_zip, echo_serve_config
from pytest_kuberay.workloads.serve_config import app_configs, validate_serve_config
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

__all__ = [
    "CLUSTER_CHANGES",
    "SERVE_CHANGES",
    "IncrementalUpgradeOptions",
    "app_working_dir",
    "apply_change",
    "build_rayservice",
    "serve_app_configmap",
    "upgrade_plan",
]

MANIFESTS_DIR = data_dir("manifests")
APPS_MOUNT = "/home/ray/apps"


@dataclass(frozen=True)
class IncrementalUpgradeOptions:
    """``spec.upgradeStrategy.clusterUpgradeOptions``; maxSurge < 50 keeps 4189 visible (docs/kuberay-facts.md §1)."""

    gateway_class: str
    max_surge_percent: int = 20
    step_size_percent: int = 20
    interval_seconds: int = 5


def app_working_dir(app: str) -> str:
    """The working_dir URI of an app shipped by :func:`serve_app_configmap`, as pods see it."""
    return f"file://{APPS_MOUNT}/{app}/{app}.zip"


def serve_app_configmap(app: str, namespace: str, app_dir: Path | None = None) -> dict[str, Any]:
    """A ConfigMap carrying one Serve app as ``<app>.zip``, so nothing is downloaded at run time."""
    archive = app_zip(app_dir or SERVE_APPS_DIR / app)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"serve-app-{app}", "namespace": namespace,
                     "labels": dict(MANAGED_LABEL)},
        "binaryData": {f"{app}.zip": base64.b64encode(archive).decode()},
    }


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = spec["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def build_rayservice(
    name: str,
    namespace: str,
    ray_image: str,
    serve_config: dict[str, Any],
    options: IncrementalUpgradeOptions,
    apps: tuple[str, ...] = ("echo",),
) -> dict[str, Any]:
    """A RayService with NewClusterWithIncrementalUpgrade, its apps mounted from ConfigMaps."""
    manifest = yaml.safe_load((MANIFESTS_DIR / "rayservice-incremental.yaml").read_text())
    manifest["metadata"].update(name=name, namespace=namespace)
    spec = manifest["spec"]
    spec["upgradeStrategy"]["clusterUpgradeOptions"] = {
        "gatewayClassName": options.gateway_class,
        "maxSurgePercent": options.max_surge_percent,
        "stepSizePercent": options.step_size_percent,
        "intervalSeconds": options.interval_seconds,
    }
    spec["serveConfigV2"] = yaml.safe_dump(validate_serve_config(serve_config), sort_keys=False)
    spec["rayClusterConfig"]["rayVersion"] = ray_image.rsplit(":", 1)[-1]
    cluster = spec["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        pod["volumes"] = [{"name": f"app-{a}", "configMap": {"name": f"serve-app-{a}"}} for a in apps]
        for container in pod["containers"]:
            container["image"] = ray_image
            container["volumeMounts"] = [{"name": f"app-{a}", "mountPath": f"{APPS_MOUNT}/{a}"} for a in apps]
    return manifest


def _worker_cpu(spec: dict[str, Any]) -> None:
    worker = spec["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    limits = worker["resources"]["limits"]
    limits["cpu"] = str(parse_quantity(limits["cpu"]) + 1)  # "1" -> "2", "500m" -> "1.5"


def _head_env(spec: dict[str, Any]) -> None:
    head = spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = head.setdefault("env", [])
    count = sum(1 for e in env if e["name"].startswith("PYTEST_KUBERAY_REVISION"))
    env.append({"name": f"PYTEST_KUBERAY_REVISION_{count + 1}", "value": "1"})


def _next_version(version: str) -> str:
    """v1 -> v2; anything else gets a suffix, so the new config always differs."""
    number = version.removeprefix("v")
    return f"v{int(number) + 1}" if number.isdigit() else f"{version}-next"


def _user_config(config: dict[str, Any]) -> None:
    for app in config["applications"]:
        for deployment in app.get("deployments", []):
            user = deployment.setdefault("user_config", {})
            user["version"] = _next_version(str(user.get("version", "v1")))


CLUSTER_CHANGES = {"worker-cpu": _worker_cpu, "head-env": _head_env}
SERVE_CHANGES = {"user-config": _user_config}


def apply_change(
    manifest: dict[str, Any], cluster_change: str | None = None, serve_change: str | None = None
) -> dict[str, Any]:
    """A copy of ``manifest`` with the named changes; a cluster change starts an incremental upgrade."""
    unknown = [c for c, known in ((cluster_change, CLUSTER_CHANGES), (serve_change, SERVE_CHANGES))
               if c is not None and c not in known]
    if unknown:
        raise ValueError(f"unknown change {unknown[0]!r}; cluster changes: {', '.join(CLUSTER_CHANGES)}; "
                         f"serve changes: {', '.join(SERVE_CHANGES)}")
    changed = copy.deepcopy(manifest)
    spec = changed["spec"]
    if cluster_change:
        CLUSTER_CHANGES[cluster_change](spec)
    if serve_change:
        config = yaml.safe_load(spec["serveConfigV2"])
        SERVE_CHANGES[serve_change](config)
        spec["serveConfigV2"] = yaml.safe_dump(validate_serve_config(config), sort_keys=False)
    return changed


def serve_config_of(manifest: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def upgrade_plan(before: dict[str, Any], after: dict[str, Any], labels: dict[str, str] | None = None) -> UpgradePlan:
    """What the invariants expect of an upgrade from ``before`` to ``after``."""
    options = after["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]
    return UpgradePlan(
        old_apps=app_configs(serve_config_of(before)),
        new_apps=app_configs(serve_config_of(after)),
        max_surge_percent=int(options.get("maxSurgePercent", 100)),
        step_size_percent=int(options["stepSizePercent"]),
        interval_seconds=int(options["intervalSeconds"]),
        labels=dict(labels or {}),
    )


def echo_rayservice(name: str, namespace: str, ray_image: str, options: IncrementalUpgradeOptions) -> dict[str, Any]:
    """The suites' standard RayService: the shipped echo app at version v1."""
    config = echo_serve_config("v1", working_dir=app_working_dir("echo"))
    return build_rayservice(name, namespace, ray_image, config, options)
