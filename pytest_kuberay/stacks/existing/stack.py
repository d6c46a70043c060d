"""The existing cluster as the suites see it: use the operator that is there, or install ours; undo our additions."""

from __future__ import annotations

import contextlib
import logging
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.apply import load_manifests
from pytest_kuberay._support.toolchain import ensure_component, operator_config_dir
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.gateway import gateway_api_crd_dir
from pytest_kuberay.install.istio import IstioGateway, newest_gateway
from pytest_kuberay.install.kuberay import OperatorProcess, install_kuberay_crds, runs_out_of_cluster
from pytest_kuberay.install.operator import PodLogFollower
from pytest_kuberay.install.release_manifests import install_release_manifests
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import ensure_managed_namespace
from pytest_kuberay.settings import Settings
from pytest_kuberay.stacks.existing.crds import GATEWAY_API_NEEDED, delete_crd_if_unused, install_missing_crds
from pytest_kuberay.stacks.existing.discovery import (
    GATEWAY_CLASS_CRD,
    KUBERAY_CRDS,
    InstalledOperator,
    check_reachable,
    gateway_address_url,
    installed_operators,
    list_crds,
)
from pytest_kuberay.stacks.existing.kubeconfig import kubeconfig_path, minified_kubeconfig
from pytest_kuberay.stacks.existing.refusals import (
    check_gateway_api_crds,
    operator_conflicts,
    rayservice_crd_problems,
    resolve_gateway_class,
)
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["EXISTING_OPERATOR_NAMESPACE", "ExistingOperator", "ExistingStack", "existing_stack"]

log = logging.getLogger(__name__)

#: Where we install KubeRay when the cluster has none: a namespace that is visibly ours.
EXISTING_OPERATOR_NAMESPACE = "pytest-kuberay-operator"


@dataclass
class ExistingOperator:
    """An operator we found, not installed: it is left running and never restarted by us."""

    installed: InstalledOperator
    follower: PodLogFollower | None = None
    restartable: bool = False
    restarts: int = 0

    def ready(self) -> None:
        """It was running when we found it; its readiness is its owner's business."""

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
                delete_crd_if_unused(self.handle, crd, self.settings.timeout(60))
        if self._istio is not None:
            self._istio.stop()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)


@contextlib.contextmanager
def existing_stack(settings: Settings) -> Iterator[ExistingStack]:
    """Check the cluster, add what is missing, refuse conflicts; undo only our own additions."""
    kubeconfig = kubeconfig_path(settings.kubeconfig)
    handle = ClusterHandle(settings.kube_context or "existing", "existing", kubeconfig, context=settings.kube_context)
    server_version = check_reachable(handle)
    crds = list_crds(handle)
    check_gateway_api_crds(crds)
    run_dir = settings.artifacts_dir / "existing-cluster"
    run_dir.mkdir(parents=True, exist_ok=True)
    installed = installed_operators(handle)
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
        stack.created += install_missing_crds(handle, needed, crds)
        log.info("existing cluster %s (Kubernetes %s): GatewayClass %s; KubeRay %s; added: %s",
                 handle.api_client.configuration.host, server_version, handle.default_gateway_class,
                 ", ".join(o.where for o in installed) or "none installed (pytest-kuberay installs it)",
                 ", ".join(stack.created) or "nothing")
        yield stack
    finally:
        stack.cleanup()
