"""Why the existing cluster cannot give results that mean something: each conflict becomes a message, not a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.kuberay import INCREMENTAL_UPGRADE_GATE, runs_out_of_cluster
from pytest_kuberay.stacks.existing.discovery import InstalledOperator
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["check_gateway_api_crds", "operator_conflicts", "rayservice_crd_problems", "resolve_gateway_class"]


def operator_conflicts(installed: Sequence[InstalledOperator], wanted: KubeRayVersion,
                       source: Path | None = None) -> list[str]:
    """Why the operators already on the cluster cannot serve a run of ``wanted``; empty when one can."""
    if not installed:
        return []
    problems: list[str] = []
    if len(installed) > 1:
        problems.append(f"{len(installed)} KubeRay operators are installed "
                        f"({', '.join(o.where for o in installed)}); they would all reconcile the test's RayServices")
    for op in installed:
        if runs_out_of_cluster(wanted, source):
            what = f"--kuberay-source {source}" if source is not None else f"{wanted.label} (a patched build)"
            problems.append(f"{op.where} is installed, but {what} runs an operator built from source, and two "
                            "operators would both reconcile the test's RayServices; use a cluster without KubeRay, "
                            "or --kuberay-provider=kind/local")
            continue
        if op.version is None:
            problems.append(f"cannot tell the KubeRay version of {op.where} (no vX.Y.Z image tag, no "
                            "helm.sh/chart label); pytest-kuberay will not label results with a guess")
        elif op.version != wanted.tag:
            problems.append(f"KubeRay {op.version} is installed ({op.where}), but {wanted.tag} was asked for: run "
                            f"with --kuberay-version={op.version}, or upgrade it (helm upgrade kuberay-operator "
                            f"kuberay/kuberay-operator --version {wanted.helm_chart_version})")
        if not op.gate_enabled():
            flag = next((f"{k}={str(v).lower()}" for k, v in op.gates.items() if k == INCREMENTAL_UPGRADE_GATE),
                        "not set (off by default before v1.7.0)")
            problems.append(f"feature gate {INCREMENTAL_UPGRADE_GATE} is off in {op.where} ({flag}): turn it on "
                            f"with the Helm value featureGates: [{{name: {INCREMENTAL_UPGRADE_GATE}, enabled: true}}] "
                            f"(the flag --feature-gates={INCREMENTAL_UPGRADE_GATE}=true)")
        if op.watch_namespaces:
            problems.append(f"{op.where} watches only namespaces {', '.join(op.watch_namespaces)}, but every test "
                            "runs in a namespace of its own (kr-<test>-<suffix>)")
    return problems


def rayservice_crd_problems(crd: Mapping[str, Any] | None) -> list[str]:
    """Why the RayService CRD on the cluster cannot hold an incremental-upgrade spec (it predates v1.5.0)."""
    if crd is None:
        return ["the RayService CRD (rayservices.ray.io) is not installed"]
    versions = {v.get("name"): v for v in (crd.get("spec") or {}).get("versions", [])}
    v1 = versions.get("v1")
    if v1 is None or not v1.get("served"):
        return ["the RayService CRD does not serve ray.io/v1"]
    spec = ((v1.get("schema") or {}).get("openAPIV3Schema") or {}).get("properties", {}).get("spec", {})
    strategy = spec.get("properties", {}).get("upgradeStrategy", {}).get("properties", {})
    if "clusterUpgradeOptions" not in strategy:
        return ["the RayService CRD has no spec.upgradeStrategy.clusterUpgradeOptions: it predates KubeRay v1.5.0 "
                "(NewClusterWithIncrementalUpgrade); upgrade the KubeRay CRDs"]
    return []


def resolve_gateway_class(requested: str | None, classes: Sequence[Mapping[str, Any]]) -> str:
    """The GatewayClass to use: the one asked for, else ``istio``, else the only Accepted one; never installed."""

    def accepted(obj: Mapping[str, Any]) -> bool:
        conditions = (obj.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conditions)

    by_name = {str(c["metadata"]["name"]): c for c in classes}
    found = ", ".join(f"{n} ({by_name[n]['spec'].get('controllerName')}"
                      f"{'' if accepted(by_name[n]) else ', not Accepted'})" for n in sorted(by_name)) or "none"
    refuse = ("pytest-kuberay does not install a gateway controller into an existing cluster: install one "
              "(Istio, Traefik, ...) or pass --kuberay-gateway-class=<an Accepted class>")
    if requested is not None:
        if requested not in by_name:
            raise ProviderError(f"GatewayClass {requested} does not exist on this cluster (GatewayClasses: {found}); "
                                f"{refuse}")
        if not accepted(by_name[requested]):
            raise ProviderError(f"GatewayClass {requested} exists but its controller has not Accepted it "
                                f"(GatewayClasses: {found}); {refuse}")
        return requested
    if "istio" in by_name and accepted(by_name["istio"]):
        return "istio"
    usable = [n for n in sorted(by_name) if accepted(by_name[n])]
    if len(usable) == 1:
        return usable[0]
    raise ProviderError(f"no GatewayClass to use (GatewayClasses: {found}): "
                        + ("pass --kuberay-gateway-class=<one of them>" if usable else refuse))



def check_gateway_api_crds(crds: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse Gateway API CRDs that are installed but do not serve ``v1``, which KubeRay uses."""
    for name in ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"):
        if name in crds and not any(v.get("name") == "v1" and v.get("served") for v in crds[name]["spec"]["versions"]):
            raise ProviderError(f"CRD {name} does not serve gateway.networking.k8s.io/v1, which KubeRay uses: "
                                "upgrade the Gateway API CRDs to v1.4.x")
