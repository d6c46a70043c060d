"""Offline check of the kind path: every manifest it applies, server-side dry-run against a real API server.

The local provider's kube-apiserver (built from Go modules) runs with the real
KubeRay CRDs of each version and the Gateway API CRDs; what the kind path would
apply is then sent with ``dryRun=All`` and ``fieldValidation=Strict``. A wrong
field fails here, not on a user's machine with Docker. Istio's own manifests
are istioctl's business and are not checked; Helm values are not Kubernetes
objects, so their shape is checked instead, and what the Traefik chart renders
from our values (its Service and pod security context) is dry-run as an
approximation of the chart's output.

Needs root (the control plane's bridge), iproute2 and Go (CRDs come from the
Go module cache); skips with the reason otherwise.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kuberay._support import toolchain
from pytest_kuberay._support.apply import FIELD_MANAGER, apply_manifests, load_manifests
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.install.gateway import (
    TRAEFIK_CONTROLLER,
    VENDORED_GATEWAY_API_DIR,
    gateway_api_crd_dir,
    gateway_class,
    install_gateway_api,
)
from pytest_kuberay.install.helm import (
    INCREMENTAL_UPGRADE_GATE,
    KUBERAY_VALUES_FILE,
    OPERATOR_NAMESPACE,
    feature_gate_problems,
    kuberay_values,
)
from pytest_kuberay.install.istio import ISTIO_CONTROLLER
from pytest_kuberay.install.kuberay import install_kuberay_crds
from pytest_kuberay.install.traefik_helm import TRAEFIK_NAMESPACE, TRAEFIK_NODE_PORT, traefik_values
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import MANAGED_LABEL
from pytest_kuberay.stacks.existing import EXISTING_OPERATOR_NAMESPACE
from pytest_kuberay.stacks.kind import KIND_CONFIG_FILE, kind_config_problems
from pytest_kuberay.versions import KubeRayVersion, parse_version
from pytest_kuberay.workloads.rayservice import (
    IncrementalUpgradeOptions,
    apply_change,
    echo_rayservice,
    serve_app_configmap,
)

#: The KubeRay versions whose CRDs the kind path applies and the Go proxy serves (toolchain/VERSIONS.md).
VERSIONS = ("v1.5.0", "v1.5.1", "v1.6.2")
GATEWAY_CLASSES = ("istio", "traefik")
SHAPES = ((20, 20), (25, 10))  # (maxSurgePercent, stepSizePercent): the two 4189 shapes
NAMESPACE = "kind-dry-run"
RAY_IMAGE = "rayproject/ray:2.46.0"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager")

#: Chart default featureGates of kuberay-operator 1.5.0 and 1.6.2, as their values.yaml ship them.
CHART_DEFAULT_GATES = {
    "v1.5.0": [{"name": "RayClusterStatusConditions", "enabled": True},
               {"name": "RayJobDeletionPolicy", "enabled": False},
               {"name": "RayMultiHostIndexing", "enabled": False},
               {"name": "RayServiceIncrementalUpgrade", "enabled": False}],
    "v1.6.2": [{"name": "RayClusterStatusConditions", "enabled": True},
               {"name": "RayJobDeletionPolicy", "enabled": True},
               {"name": "RayMultiHostIndexing", "enabled": True},
               {"name": "RayServiceIncrementalUpgrade", "enabled": False},
               {"name": "RayCronJob", "enabled": False}],
}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create the local control plane's network bridge"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    if shutil.which("go") is None:
        return "needs Go on PATH: the real CRDs come from the Go module cache"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def dry_run_strict(cluster: ClusterHandle, manifests: Iterable[dict[str, Any]]) -> list[str]:
    """Server-side apply with ``dryRun=All`` and ``fieldValidation=Strict``.

    ``apply_manifests`` has no field-validation parameter; the dynamic client takes it as a
    raw query parameter. (Server-side apply rejects unknown fields even without it, as the
    negative test below shows, so this only makes the intent explicit.)
    """
    applied = []
    for manifest in manifests:
        resource = cluster.dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        meta = manifest["metadata"]
        cluster.dynamic.server_side_apply(
            resource, body=manifest, name=meta["name"],
            namespace=meta.get("namespace") if resource.namespaced else None,
            field_manager=FIELD_MANAGER, force_conflicts=True, dry_run="All",
            query_params=[("fieldValidation", "Strict")])
        applied.append(f"{manifest['kind']}/{meta['name']}")
    return applied


def _rayservices(gateway: str) -> list[dict[str, Any]]:
    """The RayServices the suites apply on kind: deployed, then changed to trigger each kind of upgrade."""
    manifests = []
    for max_surge, step in SHAPES:
        options = IncrementalUpgradeOptions(gateway, max_surge_percent=max_surge, step_size_percent=step)
        base = echo_rayservice(f"echo-{gateway}-{max_surge}-{step}", NAMESPACE, RAY_IMAGE, options)
        manifests += [base, apply_change(base, "worker-cpu", "user-config"), apply_change(base, "head-env", None),
                      apply_change(base, None, "user-config")]
    return manifests


@pytest.fixture(scope="module", params=VERSIONS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """A fresh control plane per version (so no CRD schema of another version lingers), with its CRDs."""
    from pytest_kuberay.providers.local.control_plane import run_control_plane

    version: KubeRayVersion = parse_version(request.param)
    root = tmp_path_factory.mktemp(f"dry-run-{version.tag}")
    try:
        toolchain.crd_dir("kuberay", version.tag)
        for name in CONTROL_PLANE:
            toolchain.ensure_component(name)
    except toolchain.ToolchainError as exc:
        pytest.skip(f"{version.tag}: {exc}")
    with run_control_plane(runs_root=root / "runs", keep_logs_in=root / "logs") as control_plane:
        cluster = ClusterHandle(f"dry-run-{version.tag}", "local", control_plane.kubeconfig)
        install_gateway_api(cluster)
        install_kuberay_crds(cluster, version)
        cluster.core.create_namespace({"metadata": {"name": NAMESPACE, "labels": MANAGED_LABEL}})
        eventually(lambda: cluster.core.read_namespaced_service_account("default", NAMESPACE), bool, timeout=60,
                   description=f"service account {NAMESPACE}/default (pods need it)")
        yield cluster


# --------------------------------------------------------------------------------------------
# Files that are not Kubernetes objects
# --------------------------------------------------------------------------------------------


def test_kind_config_is_a_kind_cluster_config() -> None:
    config = yaml.safe_load(KIND_CONFIG_FILE.read_text())
    assert kind_config_problems(config) == []
    mappings = [m for n in config["nodes"] for m in n.get("extraPortMappings", [])]
    assert [(m["containerPort"], m["listenAddress"]) for m in mappings] == [(TRAEFIK_NODE_PORT, "127.0.0.1")]
    assert traefik_values()["ports"]["web"]["nodePort"] == TRAEFIK_NODE_PORT


@pytest.mark.parametrize("version", [*CHART_DEFAULT_GATES])
def test_kuberay_helm_values_feature_gates(version: str) -> None:
    """Our values file and what it becomes per chart version keep the documented ``[{name, enabled}]`` shape."""
    assert feature_gate_problems(yaml.safe_load(KUBERAY_VALUES_FILE.read_text())) == []
    values = kuberay_values(parse_version(version), {"featureGates": CHART_DEFAULT_GATES[version]})
    assert feature_gate_problems(values) == []
    gates = {g["name"]: g["enabled"] for g in values["featureGates"]}
    assert gates[INCREMENTAL_UPGRADE_GATE] is True
    assert {k: v for k, v in gates.items() if k != INCREMENTAL_UPGRADE_GATE} == {
        g["name"]: g["enabled"] for g in CHART_DEFAULT_GATES[version] if g["name"] != INCREMENTAL_UPGRADE_GATE}
    assert values["image"] == {"repository": "quay.io/kuberay/operator", "tag": version, "pullPolicy": "IfNotPresent"}


def test_vendored_gateway_api_crds_match_the_module_cache() -> None:
    """The copy Go-less kind users get is byte-for-byte the pinned module's standard channel."""
    cached = gateway_api_crd_dir()
    assert cached != VENDORED_GATEWAY_API_DIR, "Go is on PATH, so the module cache must be used"
    ours = {p.name: p.read_bytes() for p in VENDORED_GATEWAY_API_DIR.glob("*.yaml")}
    theirs = {p.name: p.read_bytes() for p in cached.glob("*.yaml")}
    assert sorted(ours) == sorted(theirs)
    assert [name for name in ours if ours[name] != theirs[name]] == []


# --------------------------------------------------------------------------------------------
# Server-side dry-runs, per KubeRay version
# --------------------------------------------------------------------------------------------


def test_gateway_classes_dry_run(api: ClusterHandle) -> None:
    classes = [gateway_class("istio", ISTIO_CONTROLLER), gateway_class("traefik", TRAEFIK_CONTROLLER)]
    assert dry_run_strict(api, classes) == ["GatewayClass/istio", "GatewayClass/traefik"]


def test_vendored_gateway_api_crds_dry_run(api: ClusterHandle) -> None:
    applied = dry_run_strict(api, load_manifests(VENDORED_GATEWAY_API_DIR))
    assert len(applied) == 6


@pytest.mark.parametrize("gateway", GATEWAY_CLASSES)
def test_rayservices_dry_run(api: ClusterHandle, gateway: str) -> None:
    """Both shapes, deployed and after each upgrade trigger, validate against this version's RayService CRD."""
    manifests = _rayservices(gateway)
    assert dry_run_strict(api, manifests) == [f"RayService/{m['metadata']['name']}" for m in manifests]
    assert apply_manifests(api.dynamic, manifests, dry_run=True)  # the path deploy_rayservice really takes


def test_serve_app_configmap_dry_run(api: ClusterHandle) -> None:
    assert dry_run_strict(api, [serve_app_configmap("echo", NAMESPACE)]) == ["ConfigMap/serve-app-echo"]


def test_namespaces_dry_run(api: ClusterHandle) -> None:
    names = (OPERATOR_NAMESPACE, TRAEFIK_NAMESPACE, EXISTING_OPERATOR_NAMESPACE)
    manifests = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": MANAGED_LABEL}}
                 for n in names]
    assert dry_run_strict(api, manifests) == [f"Namespace/{n}" for n in names]


def test_traefik_values_render_valid_service_and_pod(api: ClusterHandle) -> None:
    """What the Traefik chart makes of our values: a NodePort in the API server's range, a pod allowed to bind :80.

    An approximation of the chart's templates (Helm is not available offline): the
    fields our values set, in the objects the chart puts them in.
    """
    values = traefik_values()
    web = values["ports"]["web"]
    labels = {"app.kubernetes.io/name": "traefik"}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "traefik", "namespace": NAMESPACE},
               "spec": {"type": values["service"]["type"], "selector": labels,
                        "ports": [{"name": "web", "port": web["exposedPort"], "targetPort": "web",
                                   "nodePort": web["nodePort"], "protocol": "TCP"}]}}
    chart_pod_security = {"runAsGroup": 65532, "runAsNonRoot": True, "runAsUser": 65532,
                          "seccompProfile": {"type": "RuntimeDefault"}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "traefik", "namespace": NAMESPACE,
                                                           "labels": labels},
           "spec": {"securityContext": {**chart_pod_security, **values["podSecurityContext"]},
                    "containers": [{"name": "traefik", "image": "docker.io/traefik:v3.6.10",
                                    "args": [f"--entryPoints.web.address=:{web['port']}/tcp",
                                             "--providers.kubernetesgateway"],
                                    "ports": [{"name": "web", "containerPort": web["port"], "protocol": "TCP"}]}]}}
    assert dry_run_strict(api, [service, pod]) == ["Service/traefik", "Pod/traefik"]


def test_misspelled_rayservice_field_is_rejected(api: ClusterHandle) -> None:
    """A wrong field must fail here: the API server names it, with or without Strict field validation."""
    from kubernetes.client.exceptions import ApiException

    good = _rayservices("istio")[0]
    bad = copy.deepcopy(good)
    options = bad["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]
    options["maxSurgePercnt"] = options.pop("maxSurgePercent")
    for attempt in (lambda: dry_run_strict(api, [bad]), lambda: apply_manifests(api.dynamic, [bad], dry_run=True)):
        with pytest.raises(ApiException) as err:
            attempt()
        message = yaml.safe_load(err.value.body)["message"]
        assert ".spec.upgradeStrategy.clusterUpgradeOptions.maxSurgePercnt: field not declared in schema" in message


def test_rendered_feature_gate_flag_is_accepted_by_the_real_operator(api: ClusterHandle, tmp_path: Path) -> None:
    """The flag the chart renders from our values (``--feature-gates=A=true,...``) starts this version's operator.

    A misspelled gate name, or one this version does not know, makes the operator exit at start.
    """
    from pytest_kuberay._support.processes import ManagedProcess, free_port, http_ok, wait_until

    version = parse_version(api.name.removeprefix("dry-run-"))
    chart = CHART_DEFAULT_GATES["v1.6.2" if version.release.minor >= 6 else "v1.5.0"]
    values = kuberay_values(version, {"featureGates": chart})
    flag = "--feature-gates=" + ",".join(f"{g['name']}={str(g['enabled']).lower()}" for g in values["featureGates"])
    try:
        binary = toolchain.ensure_operator(version.label)
    except toolchain.ToolchainError as exc:
        pytest.skip(f"operator {version.label} is not built: {exc}")
    probe = free_port()
    operator = ManagedProcess("kuberay-operator", [str(binary), flag, "--use-kubernetes-proxy",
                                                   "--enable-leader-election=false",
                                                   f"--health-probe-bind-address=127.0.0.1:{probe}",
                                                   f"--metrics-addr=127.0.0.1:{free_port()}"],
                              tmp_path / "operator.log", {"KUBECONFIG": str(api.kubeconfig)}).start()
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{probe}/readyz"), timeout=60,
                   what=f"operator {version.label} ready with {flag}", processes=[operator])
    finally:
        operator.stop()
