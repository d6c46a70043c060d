"""KubeRay through its Helm chart, the way users and upstream CI install it, plus the Helm plumbing.

A chart version is pulled once into the cache and installed from that copy, so
the CRDs we apply and the templates Helm renders come from the same place.
Helm installs a chart's CRDs only on the first ``helm install``, so we apply
each version's CRDs ourselves before every install (``--skip-crds``).

The operator runs in the cluster here; ``restart()`` deletes its pod and waits
for the Deployment's next one, the in-cluster equivalent of restarting the
local provider's operator process (upstream issue 4717).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pytest_kuberay.errors import ProviderError, ToolchainError
from pytest_kuberay.install.apply import apply_manifests, load_manifests
from pytest_kuberay.install.kuberay import install_kuberay_crds, wait_crds_established
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.local.toolchain import cache_root
from pytest_kuberay.providers.namespaces import MANAGED_LABEL
from pytest_kuberay.verdict.polling import eventually
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
    "ensure_managed_namespace",
    "feature_gate_problems",
    "helm_binary",
    "kuberay_values",
    "merge_feature_gates",
    "wait_for",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"
KUBERAY_VALUES_FILE = MANIFESTS_DIR / "helm-values-kuberay.yaml"
KUBERAY_REPO = os.environ.get("PYTEST_KUBERAY_KUBERAY_HELM_REPO", "https://ray-project.github.io/kuberay-helm/")
KUBERAY_CHART = "kuberay-operator"
OPERATOR_RELEASE = "kuberay-operator"
OPERATOR_NAMESPACE = "kuberay-system"
#: The chart's pod labels (its fullnameOverride and the release name are both kuberay-operator).
OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=kuberay-operator,app.kubernetes.io/instance=kuberay-operator"
INCREMENTAL_UPGRADE_GATE = "RayServiceIncrementalUpgrade"

HELM_MISSING = (
    "helm not found on PATH: install Helm 3 (https://helm.sh/docs/intro/install/); the kind provider installs "
    "KubeRay and Traefik with it (--kuberay-source runs the operator without Helm)"
)


def wait_for(observe: Callable[[], T], condition: Callable[[T], bool | str | None], *, timeout: float,
             description: str, show: Callable[[T], str] = repr, interval: float = 1.0) -> T:
    """``eventually`` for setup steps: a timeout is a :class:`ProviderError` (one readable line), not a test failure."""
    try:
        return eventually(observe, condition, timeout=timeout, interval=interval, description=description, show=show)
    except AssertionError as exc:
        raise ProviderError(str(exc)) from None


def helm_binary() -> str:
    helm = shutil.which("helm")
    if helm is None:
        raise ProviderError(HELM_MISSING)
    return helm


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


# --------------------------------------------------------------------------------------------
# Helm
# --------------------------------------------------------------------------------------------


class Helm:
    """The ``helm`` CLI pointed at one cluster; every failure says which command failed and why."""

    def __init__(self, kubeconfig: Path, context: str | None = None, binary: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.binary = binary or helm_binary()

    def _base(self) -> list[str]:
        argv = [self.binary, "--kubeconfig", str(self.kubeconfig)]
        return argv + (["--kube-context", self.context] if self.context else [])

    def run(self, *args: str, timeout: float = 600.0) -> str:
        argv = [*self._base(), *args]
        log.info("$ helm %s", " ".join(args))
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(f"`helm {' '.join(args)}` did not finish within {timeout:.0f}s") from exc
        if proc.returncode != 0:
            raise ProviderError(f"`helm {' '.join(args)}` failed (exit {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        return proc.stdout

    def pull(self, chart: str, repo: str, version: str) -> Path:
        """The chart directory of ``chart`` at ``version``, pulled once into the cache."""
        dest = cache_root() / "charts" / f"{chart}-{version}"
        chart_dir = dest / chart
        if (chart_dir / "Chart.yaml").is_file():
            return chart_dir
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            self.run("pull", chart, "--repo", repo, "--version", version, "--untar", "--untardir", tmp)
            if not (Path(tmp) / chart / "Chart.yaml").is_file():
                raise ProviderError(f"helm pull {chart} {version} from {repo} left no {chart}/Chart.yaml")
            with contextlib.suppress(FileExistsError, OSError):
                Path(tmp).rename(dest)  # another process may have won the race: theirs is as good
        return chart_dir

    def upgrade_install(self, release: str, chart_dir: Path, namespace: str, values: dict[str, Any],
                        timeout: float = 300.0) -> None:
        """``helm upgrade --install --wait``; CRDs are ours to apply, never Helm's."""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"{release}-values-") as handle:
            yaml.safe_dump(values, handle, sort_keys=False)
            handle.flush()
            self.run("upgrade", "--install", release, str(chart_dir), "--namespace", namespace,
                     "--values", handle.name, "--skip-crds", "--wait", "--timeout", f"{int(timeout)}s",
                     timeout=timeout + 60)

    def uninstall(self, release: str, namespace: str, timeout: float = 300.0) -> None:
        self.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", f"{int(timeout)}s",
                 timeout=timeout + 60)

    def release_exists(self, release: str, namespace: str) -> bool:
        try:
            self.run("status", release, "--namespace", namespace, timeout=60)
        except ProviderError:
            return False
        return True


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


# --------------------------------------------------------------------------------------------
# The in-cluster operator
# --------------------------------------------------------------------------------------------


def _api_reason(exc: Exception) -> str:
    """An ApiException's one-line message (its body is a Status), anything else as is."""
    body = getattr(exc, "body", None)
    if body:
        with contextlib.suppress(Exception):
            return f"HTTP {getattr(exc, 'status', '?')}: {yaml.safe_load(body)['message']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class PodLogFollower:
    """Streams one pod's container log into a file, so failure artifacts hold the operator's log."""

    def __init__(self, cluster: ClusterHandle, namespace: str, pod: str, path: Path) -> None:
        self.cluster, self.namespace, self.pod, self.path = cluster, namespace, pod, path
        self._response: Any = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"logs-{pod}", daemon=True)

    def start(self) -> PodLogFollower:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._response = self.cluster.core.read_namespaced_pod_log(
                self.pod, self.namespace, follow=True, _preload_content=False)
            with open(self.path, "ab") as out:
                for chunk in self._response.stream(4096):
                    out.write(chunk)
                    out.flush()
                    if self._stopped.is_set():
                        break
        except Exception as exc:  # the log is evidence, never a reason to fail a test
            if self._stopped.is_set():
                return
            reason = _api_reason(exc)
            log.warning("cannot follow the log of pod %s/%s: %s", self.namespace, self.pod, reason)
            with contextlib.suppress(OSError), open(self.path, "a") as out:
                out.write(f"# pytest-kuberay could not follow the log of pod {self.namespace}/{self.pod}: {reason}\n")

    def stop(self) -> None:
        self._stopped.set()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
        self._thread.join(timeout=5)


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


def _pod_ready(pod: Any) -> bool:
    conditions = {c.type: c.status for c in ((pod.status and pod.status.conditions) or [])}
    return pod.metadata.deletion_timestamp is None and conditions.get("Ready") == "True"


class HelmOperator:
    """KubeRay installed by ``helm upgrade --install`` at one version; ``stop()`` uninstalls what we installed."""

    def __init__(self, cluster: ClusterHandle, helm: Helm, version: KubeRayVersion, log_dir: Path,
                 namespace: str = OPERATOR_NAMESPACE, keep: bool = False, apply_crds: bool = True) -> None:
        self.cluster = cluster
        self.helm = helm
        self.version = version
        self.log_dir = log_dir
        self.namespace = namespace
        self.keep = keep
        self.apply_crds = apply_crds  # False on an existing cluster whose CRDs someone else installed
        self.restarts = 0
        self.restartable = True
        self.log_paths: list[Path] = []
        self._follower: PodLogFollower | None = None
        self._installed = False

    def start(self, timeout: float = 300.0) -> None:
        chart_dir = self.helm.pull(KUBERAY_CHART, KUBERAY_REPO, self.version.helm_chart_version)
        if self.apply_crds:
            apply_kuberay_crds(self.cluster, self.version, chart_dir)
        chart_values = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
        ensure_managed_namespace(self.cluster, self.namespace)
        values = kuberay_values(self.version, chart_values)
        self.helm.upgrade_install(OPERATOR_RELEASE, chart_dir, self.namespace, values, timeout=timeout)
        self._installed = True
        pod = self._wait_new_pod(set(), timeout)
        self._follow(pod)
        log.info("KubeRay operator %s installed by Helm in namespace %s (pod %s)", self.version.label,
                 self.namespace, pod)

    def _pods(self) -> list[Any]:
        return list(self.cluster.core.list_namespaced_pod(self.namespace, label_selector=OPERATOR_POD_SELECTOR).items)

    def _wait_new_pod(self, old_uids: set[str], timeout: float) -> str:
        def ready_new() -> list[str]:
            return [p.metadata.name for p in self._pods() if p.metadata.uid not in old_uids and _pod_ready(p)]

        def show(names: list[str]) -> str:
            pods = self._pods()
            return ", ".join(f"{p.metadata.name} ({p.status.phase}, uid {p.metadata.uid[:8]})" for p in pods) or "none"

        names = wait_for(ready_new, bool, timeout=timeout, interval=1.0,
                         description=f"a new Ready KubeRay operator pod in namespace {self.namespace}", show=show)
        return str(names[0])

    def _leases_held_by(self, pods: set[str]) -> list[str]:
        from kubernetes import client

        held = []
        for lease in client.CoordinationV1Api(self.cluster.api_client).list_namespaced_lease(self.namespace).items:
            holder = str((lease.spec.holder_identity if lease.spec else None) or "")
            if any(holder.startswith(f"{pod}_") for pod in pods):
                held.append(str(lease.metadata.name if lease.metadata else ""))
        return held

    def _wait_leadership(self, old_pods: set[str], new_pod: str, timeout: float) -> None:
        """With leader election on (the chart's default) the new pod is Ready before it leads: wait until it does."""
        held = self._leases_held_by(old_pods)
        if not held:
            return
        wait_for(lambda: self._leases_held_by(old_pods), lambda still: not still, timeout=timeout, interval=1.0,
                 description=f"leader lease(s) {', '.join(held)} taken over from the deleted operator pod",
                 show=lambda still: f"still held by the old pod: {still}")
        log.info("operator pod %s holds the leader lease(s) %s", new_pod, ", ".join(held))

    def _follow(self, pod: str) -> None:
        if self._follower is not None:
            self._follower.stop()
        path = self.log_dir / f"kuberay-operator-{self.version.label}-{self.restarts}.log"
        self.log_paths.append(path)
        self._follower = PodLogFollower(self.cluster, self.namespace, pod, path).start()
        self.cluster.log_files["kuberay-operator"] = path

    def restart(self, timeout: float = 120.0) -> None:
        """Delete the operator pod; wait for the Deployment's next one to be Ready (it starts with an empty cache)."""
        old = {p.metadata.uid: p.metadata.name for p in self._pods()}
        if not old:
            raise ProviderError(f"no KubeRay operator pod in namespace {self.namespace} to restart")
        for name in old.values():
            self.cluster.core.delete_namespaced_pod(name, self.namespace)
        started = time.monotonic()
        pod = self._wait_new_pod(set(old), timeout)
        self._wait_leadership(set(old.values()), pod, timeout)
        self.restarts += 1
        self._follow(pod)
        log.info("KubeRay operator restarted: pod %s replaced by %s in %.1fs", ", ".join(old.values()), pod,
                 time.monotonic() - started)

    def stop(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if self._installed and not self.keep:
            self.helm.uninstall(OPERATOR_RELEASE, self.namespace)
            self._installed = False
