"""The local provider as the suites see it: control plane, a real node, Gateway API + Traefik, KubeRay on request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kuberay.install.gateway import TraefikGateway, install_gateway_api_crds
from pytest_kuberay.install.operator import InClusterOperator
from pytest_kuberay.install.release_manifests import install_release_manifests
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.local import toolchain
from pytest_kuberay.providers.local.cluster import LocalCluster, check_local_prerequisites, local_cluster
from pytest_kuberay.providers.local.images import ensure_image, operator_image
from pytest_kuberay.providers.local.node.node import LocalNode
from pytest_kuberay.settings import Settings
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["LocalStack", "local_stack"]

log = logging.getLogger(__name__)

#: Where the operator is installed, as upstream's Helm instructions and CI do.
OPERATOR_NAMESPACE = "kuberay-system"


def gateway_listen_ip(index: int) -> str:
    """A loopback address per local cluster for Traefik's port-80 entryPoint.

    Traffic tests then only ever send to loopback, and two local clusters never fight over port 80.
    """
    return f"127.77.{index}.1"


@dataclass
class LocalStack:
    cluster: LocalCluster
    gateway: TraefikGateway
    node: LocalNode
    ray_images: dict[str, str] = field(default_factory=dict)  # version label -> image
    _wait_images: Callable[[], None] | None = None
    #: Seconds each start-up phase took, as measured here (benchmarks read these).
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def handle(self) -> ClusterHandle:
        return self.cluster.handle

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    def provide_images(self, images: Sequence[str]) -> None:
        """Build (first time) and import images into the node before pods ask for them."""
        for image in images:
            self.node.provide_image(image)

    def install_kuberay(self, version: KubeRayVersion, source: Path | None = None,
                        timeout: float = 180.0) -> InClusterOperator:
        """KubeRay in the cluster from the release's own manifests, its image built from the operator binary.

        ``source`` (a checkout) is built and installed the same way. The version's Ray image
        is on the node when this returns.
        """
        binary = toolchain.ensure_operator(version.label, source)  # a first build takes minutes: before the clock
        image = operator_image(binary, f"{version.label}-src" if source else version.label)
        config_dir = toolchain.operator_config_dir(version.label, source)
        kustomize = toolchain.ensure_component("kustomize")
        started = time.monotonic()
        self.node.provide_image(image)
        operator = install_release_manifests(self.handle, version, config_dir, image=image.name,
                                             namespace=OPERATOR_NAMESPACE, kustomize=kustomize,
                                             log_dir=self.cluster.run_dir, timeout=timeout)
        self.phases[f"operator {version.label}"] = time.monotonic() - started
        ray_image = self.ray_images.get(version.label)
        if ray_image is not None:
            waited = time.monotonic()
            self.node.provide_image(ray_image)
            self.phases[f"Ray image {ray_image} (wait after the operator)"] = time.monotonic() - waited
        return operator


@contextmanager
def local_stack(settings: Settings) -> Iterator[LocalStack]:
    """Control plane, the node, Gateway API with Traefik; every version's Ray image imported in the background."""
    check_local_prerequisites()
    ray_images = {v.label: settings.ray_image_for(v) for v in settings.versions}
    for image in dict.fromkeys(ray_images.values()):
        ensure_image(image)  # first build takes minutes: before any clock starts
    with local_cluster(timeout=settings.timeout(120),
                       keep_logs_in=settings.artifacts_dir / "local-cluster") as cluster:
        install_gateway_api_crds(cluster.handle)
        control_plane = cluster.control_plane
        node = LocalNode(control_plane, cluster.handle, cluster.run, cluster.process)
        listen_ip = gateway_listen_ip(control_plane.network.index)
        gateway = TraefikGateway(cluster.handle, control_plane.api_url, control_plane.ca_file,
                                 control_plane.admin_token, listen_ip, cluster.run_dir,
                                 class_name=settings.gateway_class or "traefik", spawn=cluster.process)
        phases = {"control plane": control_plane.start_seconds or 0.0}
        try:
            node.start(timeout=settings.timeout(120))
            phases["node"] = node.start_seconds or 0.0
            cluster.handle.log_files.update(node.log_paths)
            wait_images = node.provide_images_in_background(list(dict.fromkeys(ray_images.values())))
            started = time.monotonic()
            gateway.start(timeout=settings.timeout(60))
            phases["traefik"] = time.monotonic() - started
            cluster.handle.log_files["traefik"] = gateway.log_path
            yield LocalStack(cluster, gateway, node, ray_images, wait_images, phases)
        finally:
            gateway.stop()
            node.stop()
