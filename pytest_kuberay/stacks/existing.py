"""``--kuberay-provider=existing``: the suites on a cluster a team already has (GKE, EKS, on-prem).

Someone else's cluster gets three promises:

* **Only what is missing is installed.** Missing Gateway API CRDs are applied;
  KubeRay is installed (Helm, or the operator on the host) only when no operator
  runs. A gateway controller is never installed: the GatewayClass must exist
  and be Accepted.
* **A conflict stops the run with a message**, instead of results that mean
  nothing: KubeRay at another version than asked, the RayServiceIncrementalUpgrade
  gate off, an operator that does not watch our namespaces, CRDs too old.
* **Nothing we did not create is deleted.** What we create is recorded; at the
  end our Helm release and our namespace go, CRDs stay (deleting a CRD deletes
  every object of its kind, cluster-wide), and the log says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.apply import apply_manifests, load_manifests
from pytest_kuberay._support.toolchain import ensure_component, operator_config_dir
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.gateway import gateway_api_crd_dir
from pytest_kuberay.install.istio import IstioGateway, newest_gateway
from pytest_kuberay.install.kuberay import (
    INCREMENTAL_UPGRADE_GATE,
    OperatorProcess,
    install_kuberay_crds,
    runs_out_of_cluster,
    wait_crds_established,
)
from pytest_kuberay.install.operator import PodLogFollower
from pytest_kuberay.install.release_manifests import install_release_manifests
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import ensure_managed_namespace
from pytest_kuberay.settings import Settings
from pytest_kuberay.versions import KubeRayVersion

__all__ = [
    "EXISTING_OPERATOR_NAMESPACE",
    "ExistingOperator",
    "ExistingStack",
    "InstalledOperator",
    "existing_stack",
    "gateway_address_url",
    "inspect_operator",
    "kubeconfig_path",
    "minified_kubeconfig",
    "operator_conflicts",
    "parse_feature_gates",
    "rayservice_crd_problems",
    "resolve_gateway_class",
    "version_from_image",
]

log = logging.getLogger(__name__)

#: Where we install KubeRay when the cluster has none: a namespace that is visibly ours.
EXISTING_OPERATOR_NAMESPACE = "pytest-kuberay-operator"
KUBERAY_CRDS = ("rayclusters.ray.io", "rayjobs.ray.io", "rayservices.ray.io")
GATEWAY_CLASS_CRD = "gatewayclasses.gateway.networking.k8s.io"
#: The Gateway API CRDs KubeRay's incremental upgrade uses; others are none of our business.
GATEWAY_API_NEEDED = (GATEWAY_CLASS_CRD, "gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io")

_VERSION = re.compile(r"^v?(\d+\.\d+\.\d+)$")
_CHART_LABEL = re.compile(r"^kuberay-operator-(\d+\.\d+\.\d+)$")
#: quay.io/kuberay/operator (releases, the chart) and kuberay-operator (our builds, most mirrors).
_OPERATOR_IMAGE = re.compile(r"(^|/)(kuberay/operator|kuberay-operator)([:@]|$)")


# --------------------------------------------------------------------------------------------
# What is installed (pure: Deployments and CRDs as dicts, the API's camelCase JSON)
# --------------------------------------------------------------------------------------------


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


def gateway_address_url(gateway: Mapping[str, Any], port: int = 80) -> str | None:
    """``http://<first status address>:<port>`` of a Gateway, or None before its controller assigned one."""
    for address in (gateway.get("status") or {}).get("addresses") or []:
        value = str(address.get("value") or "")
        if value:
            host = f"[{value}]" if ":" in value else value
            return f"http://{host}:{port}"
    return None


# --------------------------------------------------------------------------------------------
# Kubeconfig (pure)
# --------------------------------------------------------------------------------------------


def kubeconfig_path(explicit: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--kuberay-kubeconfig``, else the first file of ``$KUBECONFIG``, else ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    for entry in env.get("KUBECONFIG", "").split(os.pathsep):
        if entry and Path(entry).expanduser().is_file():
            return Path(entry).expanduser()
    default = Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"
    if default.is_file():
        return default
    raise ProviderError("--kuberay-provider=existing needs a kubeconfig: pass --kuberay-kubeconfig=FILE, or set "
                        "KUBECONFIG, or create ~/.kube/config")


def minified_kubeconfig(config: Mapping[str, Any], context: str | None) -> dict[str, Any]:
    """Only ``context`` (default: the current one) with its cluster and user, as the current context.

    For the operator run on the host, which reads the current context only.
    """
    name = context or config.get("current-context")
    contexts = {c["name"]: c for c in config.get("contexts") or []}
    if name not in contexts:
        raise ProviderError(f"kubeconfig has no context {name!r} (contexts: {', '.join(sorted(contexts)) or 'none'})")
    ctx = contexts[name]["context"]
    clusters = [c for c in config.get("clusters") or [] if c["name"] == ctx.get("cluster")]
    users = [u for u in config.get("users") or [] if u["name"] == ctx.get("user")]
    return {"apiVersion": "v1", "kind": "Config", "current-context": name, "contexts": [contexts[name]],
            "clusters": clusters, "users": users, "preferences": {}}


# --------------------------------------------------------------------------------------------
# Talking to the cluster
# --------------------------------------------------------------------------------------------


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


def _crds(handle: ClusterHandle) -> dict[str, dict[str, Any]]:
    from kubernetes import client

    api = client.ApiextensionsV1Api(handle.api_client)
    items = handle.api_client.sanitize_for_serialization(api.list_custom_resource_definition())["items"]
    return {str(c["metadata"]["name"]): c for c in items}


def _installed_operators(handle: ClusterHandle) -> list[InstalledOperator]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        deployments = client.AppsV1Api(handle.api_client).list_deployment_for_all_namespaces()
    except ApiException as exc:
        raise ProviderError(f"cannot list Deployments in all namespaces to find an installed KubeRay operator: "
                            f"HTTP {exc.status} {exc.reason}") from None
    found = [inspect_operator(d) for d in handle.api_client.sanitize_for_serialization(deployments)["items"]]
    return [op for op in found if op is not None]


@dataclass
class ExistingOperator:
    """An operator we found, not installed: it is left running and never restarted by us."""

    installed: InstalledOperator
    follower: PodLogFollower | None = None
    restartable: bool = False
    restarts: int = 0

    def restart(self, timeout: float = 120.0) -> None:
        raise ProviderError(f"the existing provider does not restart {self.installed.where}: pytest-kuberay did not "
                            "install it, and restarting means deleting its pod")

    @property
    def log_paths(self) -> list[Path]:
        """The log we followed from its pod (none when it could not be followed)."""
        return [self.follower.path] if self.follower is not None else []

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.follower = None


@dataclass
class ExistingStack:
    """An existing cluster as the suites see it; ``created`` lists what we added, in order."""

    handle: ClusterHandle
    settings: Settings
    installed: list[InstalledOperator]
    kuberay_crds_owned: bool
    run_dir: Path
    created: list[str] = field(default_factory=list)
    _istio: IstioGateway | None = None
    _private_dir: Path | None = None
    _created_namespaces: list[str] = field(default_factory=list)

    @property
    def gateway_class(self) -> str:
        return self.handle.default_gateway_class

    def gateway_url_for(self, namespace: str, gateway: str) -> str:
        obj = self.handle.custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace,
                                                              "gateways", gateway)
        url = gateway_address_url(obj)
        if url is not None:
            return url
        if self.gateway_class == "istio":  # no load balancer address yet: reach Istio's Service directly
            if self._istio is None:
                self._istio = IstioGateway(self.handle, self.run_dir, self.gateway_class)
            return self._istio.url_for(namespace, gateway)
        raise ProviderError(f"Gateway {namespace}/{gateway} has no status.addresses: its controller "
                            f"({self.gateway_class}) gave it no address the host can reach")

    @property
    def gateway_url(self) -> str:
        found = newest_gateway(self.handle, self.gateway_class)
        if found is None:
            raise ProviderError(f"no Programmed Gateway of class {self.gateway_class} in a pytest-kuberay namespace")
        return self.gateway_url_for(*found)

    def _operator_kubeconfig(self) -> Path:
        """The operator on the host reads the current context only: give it a file holding just ours (0600)."""
        if self.handle.context is None:
            return self.handle.kubeconfig
        if self._private_dir is None:
            self._private_dir = Path(tempfile.mkdtemp(prefix="pytest-kuberay-kubeconfig-"))
        path = self._private_dir / "kubeconfig"
        config = yaml.safe_load(self.handle.kubeconfig.read_text())
        path.touch(mode=stat.S_IRUSR | stat.S_IWUSR)
        path.write_text(yaml.safe_dump(minified_kubeconfig(config, self.handle.context), sort_keys=False))
        return path

    def provide_images(self, images: Sequence[str]) -> None:
        """Nothing to do: the cluster pulls what pods ask for from its own registries."""

    def install_kuberay(self, version: KubeRayVersion, source: Path | None = None) -> Any:
        """Use the operator that is there if it fits; install ours only when there is none."""
        conflicts = operator_conflicts(self.installed, version, source)
        if conflicts:
            raise ProviderError(f"refusing to test KubeRay {version.label} on the existing cluster "
                                f"{self.handle.api_client.configuration.host}:\n  - " + "\n  - ".join(conflicts))
        if self.installed:
            return self._use_installed(self.installed[0])
        if self.kuberay_crds_owned:  # we created them, so each version may replace them
            applied = install_kuberay_crds(self.handle, version)
            self.created += [a for a in applied if a not in self.created]
        if runs_out_of_cluster(version, source):  # no registry of ours to push a source build's image to
            process = OperatorProcess(version, self._operator_kubeconfig(), self.run_dir, source=source)
            process.start()
            self.handle.log_files["kuberay-operator"] = process.log_paths[-1]
            self.created.append(f"KubeRay operator {version.label} (process on this host)")
            return process
        self._ensure_our_namespace(EXISTING_OPERATOR_NAMESPACE)
        image = self.settings.operator_image_for(version)
        operator = install_release_manifests(
            self.handle, version, operator_config_dir(version.label), image=image,
            namespace=EXISTING_OPERATOR_NAMESPACE, kustomize=ensure_component("kustomize"), log_dir=self.run_dir,
            timeout=self.settings.timeout(300), remove_on_stop=not self.settings.keep_cluster, apply_crds=False)
        self.created.append(f"KubeRay operator {version.label} ({image}) from its release manifests in "
                            f"{EXISTING_OPERATOR_NAMESPACE}")
        return operator

    def _use_installed(self, op: InstalledOperator) -> ExistingOperator:
        log.info("using the installed KubeRay operator: %s", op.where)
        selector = ",".join(f"{k}={v}" for k, v in op.selector.items())
        pods = self.handle.core.list_namespaced_pod(op.namespace, label_selector=selector).items if selector else []
        follower = None
        if pods:
            path = self.run_dir / f"kuberay-operator-{op.name}.log"
            follower = PodLogFollower(self.handle, op.namespace, pods[0].metadata.name, path).start()
            self.handle.log_files["kuberay-operator"] = path
        return ExistingOperator(op, follower)

    def _ensure_our_namespace(self, name: str) -> None:
        if ensure_managed_namespace(self.handle, name, require_ours=True):
            self._created_namespaces.append(name)
            self.created.append(f"Namespace {name}")

    def _delete_crd_if_unused(self, name: str) -> None:
        """Remove a CRD we created once no object of its kind is left (then deleting it deletes nothing else)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = client.ApiextensionsV1Api(self.handle.api_client)
        try:
            crd = self.handle.api_client.sanitize_for_serialization(api.read_custom_resource_definition(name))
            left = _custom_objects(self.handle, crd)
            if left:
                log.info("keeping CRD %s that pytest-kuberay created: %d objects of its kind exist", name, left)
                return
            api.delete_custom_resource_definition(name)
            # deletion finishes asynchronously (the CRD's cleanup finalizer): the run ends when it is gone
            wait_for(lambda: _crd_exists(api, name), lambda exists: not exists, timeout=self.settings.timeout(60),
                     description=f"CRD {name} deleted", interval=0.5)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete CRD %s that pytest-kuberay created: %s", name, exc.reason)
        except ProviderError as exc:
            log.warning("%s", exc)

    def cleanup(self) -> None:
        """Delete the namespaces we created this session (labelled ours); keep CRDs, say what stays."""
        from pytest_kuberay.providers.namespaces import delete_namespace

        if self.settings.keep_cluster:
            log.info("--kuberay-keep-cluster: leaving what pytest-kuberay created: %s", "; ".join(self.created))
        else:
            for name in reversed(self._created_namespaces):
                try:
                    delete_namespace(self.handle, name, timeout=self.settings.timeout(120))
                except Exception as exc:
                    log.warning("could not delete namespace %s that pytest-kuberay created: %s", name, exc)
            for crd in [c.split("/", 1)[1] for c in self.created if c.startswith("CustomResourceDefinition/")]:
                self._delete_crd_if_unused(crd)
        if self._istio is not None:
            self._istio.stop()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)


def _crd_exists(api: Any, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        api.read_custom_resource_definition(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _custom_objects(handle: ClusterHandle, crd: dict[str, Any]) -> int:
    """How many objects of a CRD's kind exist, cluster-wide (its storage version)."""
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    return len(handle.custom.list_cluster_custom_object(spec["group"], version, spec["names"]["plural"])["items"])


def _install_missing_crds(handle: ClusterHandle, manifests: Iterable[dict[str, Any]],
                          present: Mapping[str, Any]) -> list[str]:
    missing = [m for m in manifests if m["metadata"]["name"] not in present]
    if not missing:
        return []
    applied = apply_manifests(handle.dynamic, missing)
    wait_crds_established(handle, [a.split("/", 1)[1] for a in applied])
    return applied


@contextlib.contextmanager
def existing_stack(settings: Settings) -> Iterator[ExistingStack]:
    """Check the cluster, add what is missing, refuse conflicts; undo only our own additions."""
    kubeconfig = kubeconfig_path(settings.kubeconfig)
    handle = ClusterHandle(settings.kube_context or "existing", "existing", kubeconfig, context=settings.kube_context)
    server_version = check_reachable(handle)
    crds = _crds(handle)
    for name in ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"):
        if name in crds and not any(v.get("name") == "v1" and v.get("served") for v in crds[name]["spec"]["versions"]):
            raise ProviderError(f"CRD {name} does not serve gateway.networking.k8s.io/v1, which KubeRay uses: "
                                "upgrade the Gateway API CRDs to v1.4.x")
    run_dir = settings.artifacts_dir / "existing-cluster"
    run_dir.mkdir(parents=True, exist_ok=True)
    installed = _installed_operators(handle)
    kuberay_crds_owned = not any(name in crds for name in KUBERAY_CRDS)
    if not kuberay_crds_owned:
        problems = rayservice_crd_problems(crds.get("rayservices.ray.io"))
        if problems:
            raise ProviderError(f"the existing cluster's KubeRay CRDs cannot run the suites: {'; '.join(problems)}")
    if GATEWAY_CLASS_CRD in crds:
        classes = handle.custom.list_cluster_custom_object("gateway.networking.k8s.io", "v1", "gatewayclasses")["items"]
    else:
        classes = []
    handle.default_gateway_class = resolve_gateway_class(settings.gateway_class, classes)  # refuses before adding
    stack = ExistingStack(handle, settings, installed, kuberay_crds_owned, run_dir)
    try:
        needed = [m for m in load_manifests(gateway_api_crd_dir()) if m["metadata"]["name"] in GATEWAY_API_NEEDED]
        stack.created += _install_missing_crds(handle, needed, crds)
        log.info("existing cluster %s (Kubernetes %s): GatewayClass %s; KubeRay %s; added: %s",
                 handle.api_client.configuration.host, server_version, handle.default_gateway_class,
                 ", ".join(o.where for o in installed) or "none installed (pytest-kuberay installs it)",
                 ", ".join(stack.created) or "nothing")
        yield stack
    finally:
        stack.cleanup()
