"""The local provider as the suites see it: control plane, a real node, Gateway API + Traefik, KubeRay on request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kuberay._support import toolchain
from pytest_kuberay._support.phases import PHASES
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.gateway import TraefikGateway, install_gateway_api
from pytest_kuberay.install.operator import InClusterOperator
from pytest_kuberay.install.release_manifests import (
    OPERATOR_POD_SELECTOR,
    install_release_manifests,
    running_operator_image,
)
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.local.cluster import (
    LocalCluster,
    attach_local_cluster,
    check_local_prerequisites,
    local_cluster,
)
from pytest_kuberay.providers.local.images import ImageArchive, ensure_image, operator_image, pause_image
from pytest_kuberay.providers.local.node.image_seed import ensure_seed
from pytest_kuberay.providers.local.node.node import LocalNode
from pytest_kuberay.providers.local.run_registry import RunRecord, kept_runs
from pytest_kuberay.settings import Settings
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["LocalStack", "attached_stack", "find_kept_run", "local_stack"]

log = logging.getLogger(__name__)

#: Where the operator is installed, as upstream's Helm instructions and CI do.
OPERATOR_NAMESPACE = "kuberay-system"
# OPERATOR_CPU_LIMIT: the release manifests limit the operator to 100m CPU. On this 2-core node,
# busy with two Ray clusters, the CFS quota made it miss its 1 s liveness probe (/metrics) and the
# kubelet restarted it mid-upgrade (seen on v1.6.2): a restart empties its Serve-config cache, so
# the verdict was about upstream 4717, not the upgrade. The local provider keeps the 100m request
# and drops the limit; kind and existing clusters keep the release's settings.


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

    @property
    def kept(self) -> bool:
        return self.cluster.kept

    def install_kuberay(self, version: KubeRayVersion, source: Path | None = None,
                        timeout: float = 180.0) -> InClusterOperator:
        """KubeRay in the cluster from the release's own manifests, its image built from the operator binary.

        ``source`` (a checkout) is built and installed the same way. On a kept cluster an
        operator already running this very image is reused, and it stays installed after
        the session. The version's Ray image is on the node when this returns; the operator
        may still be starting: its ``ready()`` says when it is Ready (a RayService deploy waits
        for it after applying, so the two start together).
        """
        image = self.provide_operator_image(version, source)
        if self.kept and running_operator_image(self.handle, OPERATOR_NAMESPACE) == image.name:
            log.info("the kept cluster already runs %s: reusing it", image.name)
            operator = InClusterOperator(self.handle, version, OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR,
                                         self.cluster.run_dir).wait_ready(timeout)
        else:
            operator = install_release_manifests(
                self.handle, version, toolchain.operator_config_dir(version.label, source), image=image.name,
                namespace=OPERATOR_NAMESPACE, kustomize=toolchain.ensure_component("kustomize"),
                log_dir=self.cluster.run_dir, timeout=timeout, remove_on_stop=not self.kept,
                cpu_limit=False, wait=False)  # see OPERATOR_CPU_LIMIT
        ray_image = self.ray_images.get(version.label)
        if ray_image is not None:
            waited = time.monotonic()
            with PHASES.phase(f"Ray image {ray_image} imported (wait after the operator)"):
                self.node.provide_image(ray_image)
            self.phases[f"Ray image {ray_image} (wait after the operator)"] = time.monotonic() - waited
        return operator

    def provide_operator_image(self, version: KubeRayVersion, source: Path | None = None) -> ImageArchive:
        """Build the operator binary and its image (first time: minutes) and put the image on the node."""
        binary = toolchain.ensure_operator(version.label, source)
        image = operator_image(binary, binary.parent.name)  # v1.5.0, v1.5.0+pr4212, v1.5.1-src-<hash>
        self.node.provide_image(image)
        return image

    def endpoints(self) -> dict[str, str]:
        """What a later process needs to use this cluster once it is kept."""
        return {"api_url": self.cluster.control_plane.api_url, "kubeconfig": str(self.handle.kubeconfig),
                "gateway_url": self.gateway_url, "gateway_class": self.gateway.class_name}


def _gateway(cluster: LocalCluster, class_name: str) -> TraefikGateway:
    control_plane = cluster.control_plane
    return TraefikGateway(cluster.handle, control_plane.api_url, control_plane.ca_file, control_plane.admin_token,
                          gateway_listen_ip(control_plane.network.index), cluster.run_dir, class_name=class_name,
                          spawn=cluster.process)


def _build_images(settings: Settings) -> dict[str, str]:
    """Every version's Ray image, built before any clock starts (a first build takes minutes)."""
    ray_images = {v.label: settings.ray_image_for(v) for v in settings.versions}
    for image in dict.fromkeys(ray_images.values()):
        ensure_image(image)
    return ray_images


def _image_seed(ray_images: dict[str, str]) -> Path:
    """The node's containerd root with the pause and Ray images unpacked (first time: one import each)."""
    archives = [pause_image(), *(ensure_image(image) for image in dict.fromkeys(ray_images.values()))]
    return ensure_seed(archives, toolchain.ensure_component("containerd"), toolchain.ensure_component("ctr"))


@contextmanager
def local_stack(settings: Settings, keep: bool = False) -> Iterator[LocalStack]:
    """Control plane, the node, Gateway API with Traefik; every version's Ray image imported in the background.

    ``keep``: once up, everything stays running after we exit, as a kept cluster that the
    next session (``--kuberay-keep-cluster``) or ``pytest-kuberay cluster down`` finds.
    """
    check_local_prerequisites()
    with PHASES.phase("images built (cached after the first run)"):
        ray_images = _build_images(settings)
        seed = _image_seed(ray_images)
    with local_cluster(timeout=settings.timeout(120), keep_logs_in=settings.artifacts_dir / "local-cluster",
                       keep=keep) as cluster:
        PHASES.add("control plane", time.monotonic() - (cluster.control_plane.start_seconds or 0.0),
                   time.monotonic())
        cluster.handle.discarded_at_exit = not keep
        install_gateway_api(cluster.handle)
        node = LocalNode(cluster.control_plane, cluster.handle, cluster.run, cluster.process, seed=seed)
        gateway = _gateway(cluster, settings.gateway_class or "traefik")
        phases = {"control plane": cluster.control_plane.start_seconds or 0.0}
        up = False
        try:
            with PHASES.phase("node"):
                node.start(timeout=settings.timeout(120))
            phases["node"] = node.start_seconds or 0.0
            cluster.handle.log_files.update(node.log_paths)
            wait_images = node.provide_images_in_background(list(dict.fromkeys(ray_images.values())))
            started = time.monotonic()
            with PHASES.phase("traefik"):
                gateway.start(timeout=settings.timeout(60))
            phases["traefik"] = time.monotonic() - started
            cluster.handle.log_files["traefik"] = gateway.log_path
            stack = LocalStack(cluster, gateway, node, ray_images, wait_images, phases)
            if keep:
                cluster.run.keep(stack.endpoints())
            up = True
            yield stack
        finally:
            if not (keep and up):
                with PHASES.phase("teardown: gateway and node"):
                    gateway.stop()
                    node.stop()


@contextmanager
def attached_stack(run: RunRecord, settings: Settings) -> Iterator[LocalStack]:
    """A kept cluster (started by ``cluster up`` or an earlier session), used by this session and left running.

    One session at a time: a lock in the run directory keeps two from sharing it.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(run.run_dir / "session.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ProviderError(f"the kept local cluster {run.run_id} is in use by another session; wait for it, or "
                            "run without --kuberay-keep-cluster for a cluster of your own") from None
    try:
        check_local_prerequisites()
        ray_images = _build_images(settings)
        cluster = attach_local_cluster(run)
        node = LocalNode(cluster.control_plane, cluster.handle, run, cluster.process).attach()
        gateway = _gateway(cluster, run.state.endpoints.get("gateway_class", "traefik"))
        cluster.handle.log_files.update(dict(cluster.control_plane.log_paths))
        install_gateway_api(cluster.handle)  # server-side apply: a no-op when they are there
        wait_images = node.provide_images_in_background(list(dict.fromkeys(ray_images.values())))
        log.info("using the kept local cluster %s (%s)", run.run_id, cluster.control_plane.api_url)
        yield LocalStack(cluster, gateway, node, ray_images, wait_images, {})
    finally:
        lock.release()


def find_kept_run() -> RunRecord | None:
    """The kept local cluster to reuse, if one runs (the oldest one)."""
    runs = kept_runs()
    return runs[0] if runs else None
