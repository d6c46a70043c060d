"""KubeRay through its Helm chart, the way users and upstream CI install it (the kind provider).

A chart version is pulled once into the cache and installed from that copy, so
the CRDs we apply and the templates Helm renders come from the same place.
Helm installs a chart's CRDs only on the first ``helm install``, so we apply
each version's CRDs ourselves before every install (``--skip-crds``).

Once installed, the operator is an :class:`InClusterOperator` like on every
provider: waited for, logged, restarted by deleting its pod (upstream issue 4717).
The ``helm`` CLI itself is :mod:`.helm_cli`.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.apply import apply_manifests, load_manifests
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.errors import ProviderError, ToolchainError
from pytest_kuberay.install.helm_cli import HELM_MISSING, Helm, helm_binary
from pytest_kuberay.install.kuberay import INCREMENTAL_UPGRADE_GATE, install_kuberay_crds, wait_crds_established
from pytest_kuberay.install.operator import InClusterOperator, PodLogFollower
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import ensure_managed_namespace
from pytest_kuberay.versions import KubeRayVersion

__all__ = [
    "HELM_MISSING",
    "INCREMENTAL_UPGRADE_GATE",
    "KUBERAY_CHART",
    "KUBERAY_REPO",
    "KUBERAY_VALUES_FILE",
    "OPERATOR_NAMESPACE",
    "OPERATOR_RELEASE",
    "Helm",
    "HelmOperator",
    "PodLogFollower",
    "feature_gate_problems",
    "helm_binary",
    "kuberay_values",
    "merge_feature_gates",
    "wait_for",
]

log = logging.getLogger(__name__)

MANIFESTS_DIR = data_dir("manifests")
KUBERAY_VALUES_FILE = MANIFESTS_DIR / "helm-values-kuberay.yaml"
KUBERAY_REPO = os.environ.get("PYTEST_KUBERAY_KUBERAY_HELM_REPO", "https://ray-project.github.io/kuberay-helm/")
KUBERAY_CHART = "kuberay-operator"
OPERATOR_RELEASE = "kuberay-operator"
OPERATOR_NAMESPACE = "kuberay-system"
#: The chart's pod labels (its fullnameOverride and the release name are both kuberay-operator).
OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=kuberay-operator,app.kubernetes.io/instance=kuberay-operator"


# --------------------------------------------------------------------------------------------
# Values (pure)
# --------------------------------------------------------------------------------------------


def feature_gate_problems(values: dict[str, Any]) -> list[str]:
    """What is wrong with ``values["featureGates"]`` for the chart's template.

    The chart renders ``printf "%s=%t," .name .enabled``: each entry needs a string
    ``name`` and a real boolean ``enabled`` ("true" as a string renders as garbage).
    """
    gates = values.get("featureGates")
    if not isinstance(gates, list):
        return [f"featureGates must be a list of {{name, enabled}}, got {type(gates).__name__}"]
    problems = []
    for index, gate in enumerate(gates):
        where = f"featureGates[{index}]"
        if not isinstance(gate, dict):
            problems.append(f"{where} must be a mapping with name and enabled, got {gate!r}")
            continue
        extra = sorted(set(gate) - {"name", "enabled"})
        if extra:
            problems.append(f"{where} has unknown keys {extra}; the chart reads only name and enabled")
        if not isinstance(gate.get("name"), str) or not gate.get("name"):
            problems.append(f"{where}.name must be a non-empty string, got {gate.get('name')!r}")
        if not isinstance(gate.get("enabled"), bool):
            problems.append(f"{where}.enabled must be true or false (a YAML boolean), got {gate.get('enabled')!r}")
    return problems


def merge_feature_gates(chart_defaults: Sequence[dict[str, Any]],
                        ours: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chart's default gate list with our entries applied (ours win, new ones appended).

    Helm replaces lists wholesale: passing only our gate would silently reset the
    gates a chart version turns on by default (v1.6 enables RayJobDeletionPolicy).
    """
    merged = [dict(g) for g in chart_defaults]
    index = {g["name"]: i for i, g in enumerate(merged)}
    for gate in ours:
        if gate["name"] in index:
            merged[index[gate["name"]]]["enabled"] = gate["enabled"]
        else:
            merged.append(dict(gate))
    return merged


def kuberay_values(version: KubeRayVersion, chart_values: dict[str, Any] | None = None,
                   base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our values file for ``version``: its operator image tag, and its gates merged into the chart's."""
    values = copy.deepcopy(base if base is not None else yaml.safe_load(KUBERAY_VALUES_FILE.read_text()))
    values.setdefault("image", {})["tag"] = version.tag
    defaults = (chart_values or {}).get("featureGates") or []
    values["featureGates"] = merge_feature_gates(defaults, values.get("featureGates") or [])
    problems = feature_gate_problems(values)
    if problems:
        raise ProviderError(f"KubeRay Helm values for {version.label} are invalid: {'; '.join(problems)}")
    return values


def _crd_dir_from_chart(chart_dir: Path) -> Path:
    path = chart_dir / "crds"
    if not path.is_dir():
        raise ProviderError(f"chart {chart_dir} has no crds/ directory")
    return path


def apply_kuberay_crds(cluster: ClusterHandle, version: KubeRayVersion, chart_dir: Path | None) -> list[str]:
    """This version's CRDs: from the Go module cache when Go is there, else from the pulled chart."""
    try:
        return install_kuberay_crds(cluster, version)
    except ToolchainError as exc:
        if chart_dir is None:
            raise
        log.info("KubeRay CRDs from the chart's crds/ (Go module cache unavailable: %s)", exc)
    applied = apply_manifests(cluster.dynamic, load_manifests(_crd_dir_from_chart(chart_dir)))
    wait_crds_established(cluster, [name.split("/", 1)[1] for name in applied])
    return applied


class HelmOperator:
    """KubeRay installed by ``helm upgrade --install`` at one version; ``stop()`` uninstalls what we installed."""

    restartable = True

    def __init__(self, cluster: ClusterHandle, helm: Helm, version: KubeRayVersion, log_dir: Path,
                 namespace: str = OPERATOR_NAMESPACE, keep: bool = False, apply_crds: bool = True) -> None:
        self.cluster = cluster
        self.helm = helm
        self.version = version
        self.log_dir = log_dir
        self.namespace = namespace
        self.keep = keep
        self.apply_crds = apply_crds  # False on an existing cluster whose CRDs someone else installed
        self.operator: InClusterOperator | None = None

    @property
    def restarts(self) -> int:
        return self.operator.restarts if self.operator else 0

    @property
    def log_paths(self) -> list[Path]:
        return self.operator.log_paths if self.operator else []

    def start(self, timeout: float = 300.0) -> None:
        started = time.monotonic()
        chart_dir = self.helm.pull(KUBERAY_CHART, KUBERAY_REPO, self.version.helm_chart_version)
        if self.apply_crds:
            apply_kuberay_crds(self.cluster, self.version, chart_dir)
        chart_values = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
        ensure_managed_namespace(self.cluster, self.namespace)
        values = kuberay_values(self.version, chart_values)
        self.helm.upgrade_install(OPERATOR_RELEASE, chart_dir, self.namespace, values, timeout=timeout)
        uninstall = None if self.keep else (lambda: self.helm.uninstall(OPERATOR_RELEASE, self.namespace))
        self.operator = InClusterOperator(self.cluster, self.version, self.namespace, OPERATOR_POD_SELECTOR,
                                          self.log_dir, uninstall=uninstall)
        self.operator.wait_ready(timeout, started=started)

    def container_restarts(self) -> dict[str, str]:
        return self.operator.container_restarts() if self.operator else {}

    def ready(self) -> None:
        """Ready since :meth:`start` returned (Helm's install is waited for in full)."""
        if self.operator is None:
            raise ProviderError("the Helm-installed operator is not running")
        self.operator.ready()

    def restart(self, timeout: float = 120.0) -> None:
        """Delete the operator pod; wait for the Deployment's next one to be Ready (it starts with an empty cache)."""
        if self.operator is None:
            raise ProviderError("the Helm-installed operator is not running")
        self.operator.restart(timeout)

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
