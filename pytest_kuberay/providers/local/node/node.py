"""One real Kubernetes node for the local cluster: containerd + runc, CNI, kubelet, kube-proxy, CoreDNS.

Everything runs as supervised processes of the run (recorded for the reaper), inside the
node's network namespace; kubelet, containerd and the shims also share a private mount
namespace. Pods get real images (built here, imported into containerd), cgroups under the
run's own cgroup root, IPs from the run's pod CIDR, Services through kube-proxy and names
through CoreDNS, exactly as on any cluster.

Stopping discards the node: pods are killed through their cgroups (the cluster goes away
anyway, so there is nothing to drain), then the components stop, and the namespaces and
cgroups are removed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kuberay._support import toolchain
from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.processes import ProcessFactory, wait_until
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.host_tools import require_commands
from pytest_kuberay.providers.local.images import ImageArchive, ensure_image, pause_image
from pytest_kuberay.providers.local.kubeconfig import write_kubeconfig
from pytest_kuberay.providers.local.node.cgroups import CgroupTree
from pytest_kuberay.providers.local.node.cni import write_cni_config
from pytest_kuberay.providers.local.node.containerd import Containerd
from pytest_kuberay.providers.local.node.coredns import COREDNS_USER, CoreDNS, coredns_rbac
from pytest_kuberay.providers.local.node.image_seed import plant_seed
from pytest_kuberay.providers.local.node.kube_proxy import KubeProxy
from pytest_kuberay.providers.local.node.kubelet import Kubelet, KubeletSettings
from pytest_kuberay.providers.local.node.namespaces import NodeNamespaces
from pytest_kuberay.providers.local.pki import issue_certificate
from pytest_kuberay.providers.local.run_registry import RunRecord, kill_marked_processes

if TYPE_CHECKING:
    from pytest_kuberay.providers.base import ClusterHandle
    from pytest_kuberay.providers.local.control_plane import LocalControlPlane

__all__ = ["NODE_NAME", "LocalNode"]

log = logging.getLogger(__name__)

NODE_NAME = "pytest-kuberay-node"


class LocalNode:
    """The node of one local cluster; ``start()`` returns once the Node is Ready and DNS answers."""

    def __init__(self, control_plane: LocalControlPlane, handle: ClusterHandle, run: RunRecord,
                 spawn: ProcessFactory, *, seed: Path | None = None) -> None:
        """``seed``: a containerd root with images unpacked (``image_seed``), planted before containerd starts."""
        self.control_plane = control_plane
        self.seed = seed
        #: True once the node's containerd started from the seed (its images were never imported).
        self.seeded = False
        self.handle = handle
        self.run = run
        self.spawn = spawn
        self.network = control_plane.network
        self.dir = run.run_dir / "node"
        self.cgroups = CgroupTree(run.run_id)
        self.namespaces = NodeNamespaces(self.network, self.dir / "namespaces.log", spawn,
                                         kubelet_root=self.dir / "kubelet" / "root")
        self.containerd: Containerd | None = None
        self.kubelet: Kubelet | None = None
        self.kube_proxy: KubeProxy | None = None
        self.coredns: CoreDNS | None = None
        self.start_seconds: float | None = None
        self._imported: dict[str, threading.Event] = {}
        self._import_errors: dict[str, BaseException] = {}
        self._import_lock = threading.Lock()

    @property
    def log_paths(self) -> dict[str, Path]:
        parts = {"containerd": self.containerd, "kubelet": self.kubelet, "kube-proxy": self.kube_proxy,
                 "coredns": self.coredns}
        return {name: part.log_path for name, part in parts.items() if part is not None}

    def start(self, timeout: float = 120.0) -> LocalNode:
        """Build what is missing, start every component, wait for Ready; undo everything on failure."""
        binaries = {name: toolchain.ensure_component(name) for name in toolchain.NODE_COMPONENTS}
        tools = require_commands("runc", "iptables", "iptables-restore")
        pause = pause_image()
        started = time.monotonic()
        try:
            self._start(binaries, tools["runc"], pause, started + timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        log.info("node %s Ready in %.1fs", NODE_NAME, self.start_seconds)
        return self

    def attach(self) -> LocalNode:
        """The node of a kept cluster: reach its containerd (image imports) through its namespaces' holder."""
        holder = self.run.state.process("node-namespaces")
        if holder is None:
            raise ProviderError(f"run {self.run.run_id} records no node: not a kept cluster with a node")
        self.namespaces.attach(holder.pid, holder.started_at)
        binaries = {name: toolchain.ensure_component(name) for name in ("containerd", "ctr", "bridge")}
        self.containerd = Containerd(
            self.dir / "containerd", binaries["containerd"], binaries["ctr"], self.namespaces, self.spawn,
            runc=require_commands("runc")["runc"], cni_bin_dir=binaries["bridge"].parent,
            cni_conf_dir=self.dir / "cni" / "net.d", sandbox_image=pause_image().name,
        )
        return self

    def _start(self, binaries: dict[str, Path], runc: str, pause: ImageArchive, deadline: float) -> None:
        cp = self.control_plane
        pki_dir = self.dir / "pki"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run.set_cgroup_root(self.cgroups.path)
        self.cgroups.create()

        def kubeconfig(user: str, cert_name: str, groups: tuple[str, ...] = ()) -> Path:
            cert = issue_certificate(cp.pki, cert_name, common_name=user, organizations=groups)
            return write_kubeconfig(pki_dir / f"{cert_name}.kubeconfig", server=cp.api_url, ca_cert=cp.pki.ca_cert,
                                    client_cert=cert.cert, client_key=cert.key, user=user)

        kubelet_kubeconfig = kubeconfig(f"system:node:{NODE_NAME}", "kubelet-client", ("system:nodes",))
        proxy_kubeconfig = kubeconfig("system:kube-proxy", "kube-proxy")
        dns_kubeconfig = kubeconfig(COREDNS_USER, "coredns")
        serving = issue_certificate(cp.pki, "kubelet-serving", common_name=NODE_NAME, server=True,
                                    ips=[self.network.node_ip], dns_names=[NODE_NAME])
        apply_manifests(self.handle.dynamic, coredns_rbac())

        self.namespaces.start(timeout=_remaining(deadline))
        cni_dir = self.dir / "cni"
        write_cni_config(cni_dir / "net.d", self.network, cni_dir / "ipam")
        containerd_dir = self.dir / "containerd"
        if self.seed is not None:
            self.seeded = plant_seed(self.seed, containerd_dir / "root")
        self.containerd = Containerd(
            containerd_dir, binaries["containerd"], binaries["ctr"], self.namespaces, self.spawn, runc=runc,
            cni_bin_dir=binaries["bridge"].parent, cni_conf_dir=cni_dir / "net.d", sandbox_image=pause.name,
        )
        self.containerd.start(timeout=_remaining(deadline))
        if not self.containerd.has_image(pause.archive, pause.name):
            self.containerd.import_image(pause.archive, pause.name)

        self.coredns = CoreDNS(binaries["coredns"], self.dir, dns_kubeconfig, node_ip=self.network.node_ip,
                               namespaces=self.namespaces, spawn=self.spawn)
        self.coredns.start()
        self.kube_proxy = KubeProxy(binaries["kube-proxy"], self.dir, proxy_kubeconfig, node_name=NODE_NAME,
                                    node_ip=self.network.node_ip, pod_cidr=self.network.pod_cidr,
                                    namespaces=self.namespaces, spawn=self.spawn)
        self.kube_proxy.start()
        settings = KubeletSettings(
            node_name=NODE_NAME, node_ip=self.network.node_ip, root=self.dir / "kubelet", ca_cert=cp.pki.ca_cert,
            serving_cert=serving.cert, serving_key=serving.key, cgroup_root=self.cgroups.path,
            cluster_dns=self.network.node_ip, runtime_endpoint=self.containerd.endpoint,
        )
        self.kubelet = Kubelet(binaries["kubelet"], settings, kubelet_kubeconfig, self.namespaces, self.spawn)
        self.kubelet.start()
        self._wait_node_ready(deadline)
        self.coredns.wait_ready(_remaining(deadline))
        self.kube_proxy.wait_ready(_remaining(deadline))

    def _wait_node_ready(self, deadline: float) -> None:
        assert self.kubelet is not None and self.kubelet.process is not None
        core = self.handle.core

        def ready() -> str:
            node = core.read_node(NODE_NAME)
            conditions = {c.type: (c.status, c.message) for c in (node.status.conditions or [])}
            status, message = conditions.get("Ready", ("Unknown", "no Ready condition yet"))
            return "True" if status == "True" else f"{status}: {message}"

        processes = [p for p in (self.containerd and self.containerd.process, self.kubelet.process) if p]
        wait_until(ready, condition=lambda value: value == "True", timeout=_remaining(deadline),
                   what=f"node {NODE_NAME} Ready", processes=processes)

    # ------------------------------------------------------------------------------ images

    def provide_image(self, image: str | ImageArchive, timeout: float = 600.0) -> None:
        """Make ``image`` available on the node: build it (first time) and import it (once per run).

        ``image`` is a name the image builder knows (``rayproject/ray:2.46.0``) or an archive
        built elsewhere (the operator's). Several callers may ask for the same image at once;
        one imports, the others wait.
        """
        prebuilt = image if isinstance(image, ImageArchive) else None
        image = prebuilt.name if prebuilt is not None else str(image)
        with self._import_lock:
            done = self._imported.get(image)
            first = done is None
            if first:
                done = self._imported[image] = threading.Event()
        assert done is not None
        if first:
            try:
                archive = prebuilt or ensure_image(image)
                if self.containerd is None:
                    raise ProviderError("the node is not running")
                if not self.containerd.has_image(archive.archive, archive.name):  # a kept node may have it
                    self.containerd.import_image(archive.archive, archive.name, timeout=timeout)
            except BaseException as exc:
                self._import_errors[image] = exc
                raise
            finally:
                done.set()
        elif not done.wait(timeout):
            raise ProviderError(f"timed out after {timeout:.0f}s waiting for image {image} to be imported")
        if image in self._import_errors:
            raise self._import_errors[image]

    def provide_images_in_background(self, images: list[str]) -> Callable[[], None]:
        """Start importing ``images``; returns a function that waits for them and re-raises a failure."""
        errors: list[BaseException] = []

        def work(image: str) -> None:
            try:
                self.provide_image(image)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(img,), name=f"import {img}", daemon=True) for img in images]
        for thread in threads:
            thread.start()

        def wait() -> None:
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]

        return wait

    # -------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Discard the node: no graceful pod termination, nothing left behind."""
        errors: list[str] = []

        def attempt(what: str, action: Callable[[], object]) -> None:
            try:
                action()
            except Exception as exc:  # keep going: every later step frees something too
                errors.append(f"{what}: {exc}")
                log.exception("stopping the node: %s failed", what)

        if self.kubelet is not None:
            attempt("kubelet", self.kubelet.stop)
        attempt("pods", self.cgroups.kill_all)
        for part in (self.kube_proxy, self.coredns, self.containerd):
            if part is not None:
                attempt(type(part).__name__, part.stop)
        # containerd's shims outlive it by design; they carry the run's marker.
        attempt("shims", lambda: kill_marked_processes(self.run.run_id, names={"containerd-shim-runc-v2"}))
        attempt("namespaces", self.namespaces.stop)
        attempt("cgroups", self.cgroups.remove)
        if errors:
            raise ProviderError("the node did not stop cleanly: " + "; ".join(errors))


def _remaining(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
