"""The kind provider: Kubernetes in Docker, set up the way upstream KubeRay CI sets up its e2e cluster.

* The cluster comes from pytest-kind-ng's ``KindCluster``: named ``pytest-kuberay``,
  reused when it exists (a second session starts in seconds), deleted at the end
  unless ``--kuberay-keep-cluster``. The node image is ``--kind-image``, else
  ``$PYTEST_KUBERAY_KIND_IMAGE``, else kind's default.
* Ray and operator images present in the local Docker engine are loaded into the
  node (``kind load docker-image``), so nothing is pulled twice.
* Gateway API standard CRDs v1.4.x, then Istio minimal (GatewayClass ``istio``, the
  default, as upstream CI) or Traefik from its chart (``--kuberay-gateway-class=traefik``).
* KubeRay from its Helm chart per version, or, for ``--kuberay-source`` and patched
  versions (``v1.5.0+pr4212``), the operator built from source and run on the host.

What is missing (Docker engine, kind, helm, istioctl) is reported as one
:class:`ProviderUnavailable` message, which the fixture turns into a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import yaml

from pytest_kuberay._support.toolchain import cache_root
from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.gateway import install_gateway_api
from pytest_kuberay.install.helm import HelmOperator
from pytest_kuberay.install.helm_cli import HELM_MISSING, Helm
from pytest_kuberay.install.istio import ISTIOCTL_MISSING, KUBECTL_MISSING, IstioGateway
from pytest_kuberay.install.kuberay import (
    OperatorProcess,
    install_kuberay_crds,
    runs_out_of_cluster,
)
from pytest_kuberay.install.traefik_helm import TRAEFIK_NODE_PORT, TraefikHelmGateway
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.settings import Settings
from pytest_kuberay.versions import KubeRayVersion

__all__ = [
    "KIND_CLUSTER_NAME",
    "KIND_CONFIG_FILE",
    "KIND_GATEWAY_CLASSES",
    "NO_DOCKER",
    "NO_KIND",
    "KindStack",
    "ProviderUnavailable",
    "check_prerequisites",
    "gateway_host_port",
    "images_to_preload",
    "kind_binary",
    "kind_config_problems",
    "kind_options",
    "kind_stack",
    "node_image",
    "render_kind_config",
]

log = logging.getLogger(__name__)

MANIFESTS_DIR = data_dir("manifests")
KIND_CONFIG_FILE = MANIFESTS_DIR / "kind-config.yaml"

KIND_CLUSTER_NAME = "pytest-kuberay"
KIND_GATEWAY_CLASSES = ("istio", "traefik")
NODE_IMAGE_ENV = "PYTEST_KUBERAY_KIND_IMAGE"
GATEWAY_PORT_ENV = "PYTEST_KUBERAY_KIND_GATEWAY_PORT"

NO_DOCKER = "no Docker engine: kind provider unavailable (start Docker, or use --kuberay-provider=local)"
NO_KIND = "kind not found on PATH: install kind or pass --kind-bin"
NO_PYTEST_KIND = "pytest-kind-ng is not installed: kind provider unavailable (pip install 'pytest-kuberay[kind]')"


class ProviderUnavailable(ProviderError):
    """A tool the provider needs is not on this machine; the session skips with this message."""


# --------------------------------------------------------------------------------------------
# Prerequisites and options (pure, given ``which`` and ``docker_answers``)
# --------------------------------------------------------------------------------------------


def kind_binary(explicit: str | None = None, which: Callable[[str], str | None] = shutil.which) -> str:
    """``--kind-bin`` if given (it must exist), else ``kind`` on PATH; never a download."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ProviderUnavailable(f"--kind-bin {explicit}: no such file: install kind or fix the path")
        return str(path)
    found = which("kind")
    if found is None:
        raise ProviderUnavailable(NO_KIND)
    return found


def check_prerequisites(settings: Settings, kind_bin: str | None = None,
                        docker_answers: Callable[[], bool] | None = None,
                        which: Callable[[str], str | None] = shutil.which) -> str:
    """Everything the kind path needs, checked before anything starts; returns the kind binary."""
    if docker_answers is None:
        from pytest_kuberay.providers.select import docker_engine_answers

        docker_answers = docker_engine_answers
    if not docker_answers():
        raise ProviderUnavailable(NO_DOCKER)
    binary = kind_binary(kind_bin, which)
    gateway = settings.gateway_class or "istio"
    if gateway not in KIND_GATEWAY_CLASSES:
        raise ProviderError(f"--kuberay-gateway-class={gateway}: on kind the GatewayClass is one of "
                            f"{', '.join(KIND_GATEWAY_CLASSES)} (the controllers this provider installs)")
    if gateway == "istio" and which("istioctl") is None:
        raise ProviderUnavailable(ISTIOCTL_MISSING)
    if gateway == "istio" and which("kubectl") is None:
        raise ProviderUnavailable(KUBECTL_MISSING)
    helm_needed = gateway == "traefik" or any(not runs_out_of_cluster(v, settings.source) for v in settings.versions)
    if helm_needed and which("helm") is None:
        raise ProviderUnavailable(HELM_MISSING)
    return binary


def node_image(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """``--kind-image``, else ``$PYTEST_KUBERAY_KIND_IMAGE``, else None (kind's default for its version)."""
    env = os.environ if environ is None else environ
    return explicit or env.get(NODE_IMAGE_ENV) or None


def gateway_host_port(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    text = env.get(GATEWAY_PORT_ENV)
    if not text:
        return int(render_kind_config()["nodes"][0]["extraPortMappings"][0]["hostPort"])
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ProviderError(f"${GATEWAY_PORT_ENV}={text!r} is not a TCP port; example: {GATEWAY_PORT_ENV}=30080")
    return int(text)


class KindOptions(TypedDict):
    kind_bin: str | None
    kind_image: str | None


def kind_options(config: Any) -> KindOptions:
    """pytest-kind-ng's ``--kind-bin`` and ``--kind-image`` (absent when its plugin is disabled)."""
    return {"kind_bin": config.getoption("kind_bin", None), "kind_image": config.getoption("kind_image", None)}


# --------------------------------------------------------------------------------------------
# The kind config (pure)
# --------------------------------------------------------------------------------------------

_KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
_NODE_KEYS = {"role", "image", "extraPortMappings", "extraMounts", "labels", "kubeadmConfigPatches"}
_MAPPING_KEYS = {"containerPort", "hostPort", "listenAddress", "protocol"}


def render_kind_config(host_port: int | None = None) -> dict[str, Any]:
    """manifests/kind-config.yaml, with the gateway's host port replaced when given."""
    config: dict[str, Any] = yaml.safe_load(KIND_CONFIG_FILE.read_text())
    if host_port is not None:
        for node in config["nodes"]:
            for mapping in node.get("extraPortMappings", []):
                if mapping["containerPort"] == TRAEFIK_NODE_PORT:
                    mapping["hostPort"] = host_port
    return config


def kind_config_problems(config: Any) -> list[str]:
    """A schema check of the kind config fields we use (kind's own v1alpha4 types, the subset we rely on)."""
    if not isinstance(config, dict):
        return [f"a kind config is a mapping, got {type(config).__name__}"]
    problems = []
    if config.get("kind") != "Cluster":
        problems.append(f"kind must be Cluster, got {config.get('kind')!r}")
    if config.get("apiVersion") != _KIND_API_VERSION:
        problems.append(f"apiVersion must be {_KIND_API_VERSION}, got {config.get('apiVersion')!r}")
    extra = sorted(set(config) - {"kind", "apiVersion", "name", "nodes", "networking", "featureGates",
                                  "runtimeConfig", "containerdConfigPatches", "kubeadmConfigPatches"})
    if extra:
        problems.append(f"unknown top-level fields {extra}")
    nodes = config.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        return [*problems, "nodes must be a non-empty list"]
    if not any(isinstance(n, dict) and n.get("role") == "control-plane" for n in nodes):
        problems.append("no node has role control-plane")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            problems.append(f"nodes[{i}] must be a mapping")
            continue
        if node.get("role") not in ("control-plane", "worker"):
            problems.append(f"nodes[{i}].role must be control-plane or worker, got {node.get('role')!r}")
        if set(node) - _NODE_KEYS:
            problems.append(f"nodes[{i}] has unknown fields {sorted(set(node) - _NODE_KEYS)}")
        for j, mapping in enumerate(node.get("extraPortMappings", [])):
            where = f"nodes[{i}].extraPortMappings[{j}]"
            if not isinstance(mapping, dict):
                problems.append(f"{where} must be a mapping")
                continue
            if set(mapping) - _MAPPING_KEYS:
                problems.append(f"{where} has unknown fields {sorted(set(mapping) - _MAPPING_KEYS)}")
            for key in ("containerPort", "hostPort"):
                port = mapping.get(key)
                if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                    problems.append(f"{where}.{key} must be a port number, got {port!r}")
            if mapping.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                problems.append(f"{where}.protocol must be TCP, UDP or SCTP, got {mapping.get('protocol')!r}")
            if not isinstance(mapping.get("listenAddress", "0.0.0.0"), str):
                problems.append(f"{where}.listenAddress must be an IP address string")
    return problems


# --------------------------------------------------------------------------------------------
# Images and CRDs
# --------------------------------------------------------------------------------------------


def images_to_preload(settings: Settings) -> list[str]:
    """Each version's Ray image, and the operator image of versions installed by Helm."""
    images: dict[str, None] = {}
    for version in settings.versions:
        images[settings.ray_image_for(version)] = None
        if not runs_out_of_cluster(version, settings.source):
            images[version.operator_image] = None
    return list(images)


def docker_image_present(image: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True,
                            check=False, timeout=30)
    return result.returncode == 0


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


@dataclass
class KindStack:
    """What the suites see: the kind cluster's handle, its gateway URL, and KubeRay on request."""

    cluster: Any  # pytest_kind.KindCluster
    handle: ClusterHandle
    gateway: IstioGateway | TraefikHelmGateway
    run_dir: Path
    helm: Helm | None
    keep: bool = False

    @property
    def gateway_url(self) -> str:
        """Traefik: fixed (NodePort published by kind). Istio: a port-forward to the newest Gateway of ours."""
        return self.gateway.url

    def gateway_url_for(self, namespace: str, gateway: str) -> str:
        return self.gateway.url_for(namespace, gateway)

    def provide_images(self, images: Sequence[str]) -> None:
        """Load images the local Docker engine has into the kind node; the node pulls the others."""
        _preload(self.cluster, list(images))

    def install_kuberay(self, version: KubeRayVersion, source: Path | None = None) -> HelmOperator | OperatorProcess:
        """This version's CRDs, then its operator: Helm chart in the cluster, or built from source on the host."""
        if runs_out_of_cluster(version, source):
            install_kuberay_crds(self.handle, version)
            process = OperatorProcess(version, self.handle.kubeconfig, self.run_dir, source=source)
            process.start()
            self.handle.log_files["kuberay-operator"] = process.log_paths[-1]
            return process
        if self.helm is None:
            raise ProviderUnavailable(HELM_MISSING)
        operator = HelmOperator(self.handle, self.helm, version, self.run_dir, keep=self.keep)
        operator.start()
        return operator


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """pytest-xdist workers share the cluster: one creates and installs, the others then reuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export_kubeconfig(kind: str, name: str, kubeconfig: Path) -> None:
    """Write a reused cluster's kubeconfig: KindCluster only writes it when it creates the cluster."""
    existing = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, check=False)
    if name in existing.stdout.split():
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([kind, "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)],
                       capture_output=True, text=True, check=True)
        log.info("reusing kind cluster %s", name)


def _check_port_mapping(name: str, host_port: int) -> None:
    """A reused cluster made with another config does not publish the gateway port: say so, do not hang later."""
    out = subprocess.run(["docker", "port", f"{name}-control-plane", f"{TRAEFIK_NODE_PORT}/tcp"],
                         capture_output=True, text=True, check=False)
    if f"127.0.0.1:{host_port}" not in out.stdout:
        raise ProviderError(
            f"kind cluster {name} does not publish node port {TRAEFIK_NODE_PORT} on 127.0.0.1:{host_port} "
            f"(docker port says {(out.stdout or out.stderr).strip()!r}); it was created with another config: "
            f"delete it with `kind delete cluster --name {name}` and run again")


def _preload(cluster: Any, images: list[str]) -> None:
    for image in images:
        if not docker_image_present(image):
            log.info("%s is not in the local Docker engine: the node pulls it", image)
            continue
        try:
            cluster.load_docker_image(image)
        except subprocess.CalledProcessError as exc:
            log.warning("kind load docker-image %s failed (%s): the node pulls it instead", image, exc)


@contextlib.contextmanager
def kind_stack(settings: Settings, kind_bin: str | None = None, kind_image: str | None = None,
               name: str = KIND_CLUSTER_NAME) -> Iterator[KindStack]:
    """The kind cluster with Gateway API and a gateway controller; deleted afterwards unless kept."""
    binary = check_prerequisites(settings, kind_bin)
    try:
        from pytest_kind import KindCluster
    except ImportError:
        raise ProviderUnavailable(NO_PYTEST_KIND) from None
    gateway_class = settings.gateway_class or "istio"
    host_port = gateway_host_port()
    run_dir = settings.artifacts_dir / "kind-cluster"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "kind-config.yaml"
    config = render_kind_config(host_port)
    problems = kind_config_problems(config)
    if problems:
        raise ProviderError(f"{KIND_CONFIG_FILE} is not a valid kind config: {'; '.join(problems)}")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")
    keep = settings.keep_cluster or bool(xdist_worker)  # other workers may still use it

    cluster = KindCluster(name, image=node_image(kind_image), kind_path=Path(binary),
                          kubectl_path=Path(shutil.which("kubectl") or "kubectl"))
    gateway: IstioGateway | TraefikHelmGateway | None = None
    try:
        with _flock(cache_root() / "kind" / f"{name}.lock"):
            _export_kubeconfig(binary, name, Path(cluster.kubeconfig_path))
            try:
                cluster.create(config_file=config_path)
            except subprocess.CalledProcessError as exc:
                raise ProviderError(f"`kind create cluster --name {name}` failed (exit {exc.returncode}); "
                                    "its output is above") from None
            handle = ClusterHandle(name, "kind", Path(cluster.kubeconfig_path).resolve(), context=f"kind-{name}",
                                   default_gateway_class=gateway_class)
            if gateway_class == "traefik":
                _check_port_mapping(name, host_port)
            _preload(cluster, images_to_preload(settings))
            install_gateway_api(handle)
            helm = Helm(handle.kubeconfig, handle.context) if shutil.which("helm") else None
            if gateway_class == "traefik":
                assert helm is not None  # check_prerequisites made sure
                gateway = TraefikHelmGateway(handle, helm, host_port, class_name=gateway_class)
            else:
                gateway = IstioGateway(handle, run_dir, class_name=gateway_class)
            gateway.install(timeout=settings.timeout(600))
        yield KindStack(cluster, handle, gateway, run_dir, helm, keep=keep)
    finally:
        if gateway is not None:
            gateway.stop()
        if keep:
            log.info("keeping kind cluster %s (kubeconfig %s)%s", name, cluster.kubeconfig_path,
                     " because pytest-xdist workers share it" if xdist_worker and not settings.keep_cluster else "")
        else:
            cluster.delete()
