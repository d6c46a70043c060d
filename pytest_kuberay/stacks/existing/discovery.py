"""What someone else's cluster already runs: is it reachable, which CRDs, which KubeRay operator, which gates.

The parsing is pure (Deployments and CRDs as dicts, the API's camelCase JSON); the reads are thin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.kuberay import INCREMENTAL_UPGRADE_GATE
from pytest_kuberay.providers.base import ClusterHandle

__all__ = [
    "GATEWAY_CLASS_CRD",
    "KUBERAY_CRDS",
    "InstalledOperator",
    "check_reachable",
    "gateway_address_url",
    "inspect_operator",
    "installed_operators",
    "list_crds",
    "parse_feature_gates",
    "version_from_image",
]

KUBERAY_CRDS = ("rayclusters.ray.io", "rayjobs.ray.io", "rayservices.ray.io")
GATEWAY_CLASS_CRD = "gatewayclasses.gateway.networking.k8s.io"

_VERSION = re.compile(r"^v?(\d+\.\d+\.\d+)$")
_CHART_LABEL = re.compile(r"^kuberay-operator-(\d+\.\d+\.\d+)$")
#: quay.io/kuberay/operator (releases, the chart) and kuberay-operator (our builds, most mirrors).
_OPERATOR_IMAGE = re.compile(r"(^|/)(kuberay/operator|kuberay-operator)([:@]|$)")


def parse_feature_gates(argv: Sequence[str]) -> dict[str, bool]:
    """Gates from ``--feature-gates=A=true,B=false`` (or ``--feature-gates A=true``); later flags win."""
    gates: dict[str, bool] = {}
    values: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--feature-gates="):
            values.append(arg.split("=", 1)[1])
        elif arg == "--feature-gates" and i + 1 < len(argv):
            values.append(argv[i + 1])
    for value in values:
        for item in value.split(","):
            name, _, enabled = item.strip().partition("=")
            if name:
                gates[name.strip()] = enabled.strip().lower() == "true"
    return gates


def _flag_values(argv: Sequence[str], flag: str) -> list[str]:
    found = []
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            found.append(arg.split("=", 1)[1])
        elif arg == flag and i + 1 < len(argv):
            found.append(argv[i + 1])
    return found


def version_from_image(image: str) -> str | None:
    """``quay.io/kuberay/operator:v1.5.1`` -> ``v1.5.1``; digests and other tags (``nightly``) -> None."""
    if "@" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return None
    match = _VERSION.match(tag)
    return f"v{match.group(1)}" if match else None


@dataclass(frozen=True)
class InstalledOperator:
    """A KubeRay operator Deployment as found on the cluster."""

    namespace: str
    name: str
    image: str
    version: str | None  # v1.5.1; None when neither the image tag nor the chart label tell
    gates: Mapping[str, bool]
    watch_namespaces: tuple[str, ...] = ()
    selector: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"Deployment {self.namespace}/{self.name} with image {self.image}"

    def gate_enabled(self) -> bool:
        """The gate as this operator runs it: its flag, else its version's default (on from v1.7.0)."""
        if INCREMENTAL_UPGRADE_GATE in self.gates:
            return self.gates[INCREMENTAL_UPGRADE_GATE]
        if self.version is None:
            return False
        parts = tuple(int(p) for p in self.version.lstrip("v").split("."))
        return parts >= (1, 7, 0)


def inspect_operator(deployment: Mapping[str, Any]) -> InstalledOperator | None:
    """The KubeRay operator in ``deployment``, or None when it runs something else."""
    meta = deployment.get("metadata") or {}
    labels = meta.get("labels") or {}
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    operator = next((c for c in containers if _OPERATOR_IMAGE.search(str(c.get("image", "")))), None)
    is_kuberay = (labels.get("app.kubernetes.io/name") == "kuberay-operator"  # the Helm chart
                  or labels.get("app.kubernetes.io/component") == "kuberay-operator")  # the release manifests
    if operator is None and is_kuberay and containers:
        operator = containers[0]
    if operator is None:
        return None
    argv = [*(operator.get("command") or []), *(operator.get("args") or [])]
    image = str(operator.get("image", ""))
    version = version_from_image(image)
    if version is None:
        chart = _CHART_LABEL.match(str(labels.get("helm.sh/chart", "")))
        version = f"v{chart.group(1)}" if chart else None
    watch = tuple(ns for value in _flag_values(argv, "--watch-namespace") for ns in value.split(",") if ns)
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return InstalledOperator(str(meta.get("namespace", "")), str(meta.get("name", "")), image, version,
                             parse_feature_gates(argv), watch, dict(selector))


def gateway_address_url(gateway: Mapping[str, Any], port: int = 80) -> str | None:
    """``http://<first status address>:<port>`` of a Gateway, or None before its controller assigned one."""
    for address in (gateway.get("status") or {}).get("addresses") or []:
        value = str(address.get("value") or "")
        if value:
            host = f"[{value}]" if ":" in value else value
            return f"http://{host}:{port}"
    return None



def check_reachable(handle: ClusterHandle, timeout: float = 15.0) -> str:
    """The server's version, or a ProviderError that names the server and the reason."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        api_client = handle.api_client
    except (ConfigException, OSError, KeyError, TypeError) as exc:
        raise ProviderError(f"cannot load kubeconfig {handle.kubeconfig}"
                            f"{f' (context {handle.context})' if handle.context else ''}: {exc}") from None
    server = api_client.configuration.host
    try:
        info = client.VersionApi(api_client).get_code(_request_timeout=timeout)
    except ApiException as exc:
        raise ProviderError(f"cannot reach the cluster at {server}: HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 wraps the real cause: refused, DNS, TLS, timeout
        reason = getattr(exc, "reason", None) or exc
        raise ProviderError(f"cannot reach the cluster at {server}: {reason}") from None
    return str(info.git_version)


def list_crds(handle: ClusterHandle) -> dict[str, dict[str, Any]]:
    """Every CRD on the cluster by name, as API JSON."""
    from kubernetes import client

    api = client.ApiextensionsV1Api(handle.api_client)
    items = handle.api_client.sanitize_for_serialization(api.list_custom_resource_definition())["items"]
    return {str(c["metadata"]["name"]): c for c in items}


def installed_operators(handle: ClusterHandle) -> list[InstalledOperator]:
    """The KubeRay operators running in any namespace."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        deployments = client.AppsV1Api(handle.api_client).list_deployment_for_all_namespaces()
    except ApiException as exc:
        raise ProviderError(f"cannot list Deployments in all namespaces to find an installed KubeRay operator: "
                            f"HTTP {exc.status} {exc.reason}") from None
    found = [inspect_operator(d) for d in handle.api_client.sanitize_for_serialization(deployments)["items"]]
    return [op for op in found if op is not None]
