"""KubeRay at a version: its CRDs, and the operator run as a local process.

The local provider (and ``--kuberay-source`` on any provider) runs the real
operator binary, built from the Go module at the requested version, out of
cluster with ``--use-kubernetes-proxy`` so it reaches Ray dashboards through the
API server exactly as our probe does. It can be restarted on demand: a suite
restarts it mid-upgrade to check that nothing depends on its in-memory cache.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pytest_kuberay._support.apply import apply_manifests, load_manifests
from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, free_port, http_ok, wait_until
from pytest_kuberay._support.toolchain import crd_dir, ensure_operator
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["INCREMENTAL_UPGRADE_GATE", "OperatorProcess", "install_kuberay_crds", "runs_out_of_cluster",
           "wait_crds_established"]

log = logging.getLogger(__name__)

INCREMENTAL_UPGRADE_GATE = "RayServiceIncrementalUpgrade"


def install_kuberay_crds(cluster: ClusterHandle, version: KubeRayVersion) -> list[str]:
    """Server-side apply this version's CRDs (Helm installs CRDs only once, so we always do it ourselves)."""
    applied = apply_manifests(cluster.dynamic, load_manifests(crd_dir("kuberay", version.tag)))
    wait_crds_established(cluster, [name.split("/", 1)[1] for name in applied])
    return applied


def wait_crds_established(cluster: ClusterHandle, names: Sequence[str], timeout: float = 60.0) -> None:
    """Wait until the API server serves these CRDs (custom objects of a just-applied CRD 404 until then)."""
    from kubernetes import client

    api = client.ApiextensionsV1Api(cluster.api_client)

    def pending() -> list[str]:
        waiting = []
        for name in names:
            # Raw JSON: a KubeRay CRD is a megabyte, and the client's model classes take seconds to build it.
            reply = api.read_custom_resource_definition(name, _preload_content=False)
            status = json.loads(reply.data).get("status") or {}  # type: ignore[attr-defined]
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            if conditions.get("Established") != "True":
                waiting.append(name)
        return waiting

    wait_until(lambda: not pending(), timeout=timeout, what=f"CRDs established: {', '.join(names)}")


def runs_out_of_cluster(version: KubeRayVersion, source: Path | None) -> bool:
    """Source checkouts and patched versions have no image: their operator is built and run on the host."""
    return source is not None or bool(version.patches)


class OperatorProcess:
    """The real KubeRay operator, out of cluster, with the incremental-upgrade gate on.

    Only for a source build on kind or an existing cluster (no registry of ours to push its image to);
    every provider of ours runs the operator in the cluster.
    """

    restartable = True

    def __init__(self, version: KubeRayVersion, kubeconfig: Path, run_dir: Path, source: Path | None = None,
                 spawn: ProcessFactory = ManagedProcess) -> None:
        self.spawn = spawn
        self.version = version
        self.kubeconfig = kubeconfig
        self.run_dir = run_dir
        self.source = source
        self.binary: Path | None = None
        self.process: ManagedProcess | None = None
        self.restarts = 0
        self.log_paths: list[Path] = []

    def _argv(self, probe_port: int) -> list[str]:
        assert self.binary is not None
        return [
            str(self.binary),
            f"--feature-gates={INCREMENTAL_UPGRADE_GATE}=true",
            "--use-kubernetes-proxy",
            "--enable-leader-election=false",
            f"--health-probe-bind-address=127.0.0.1:{probe_port}",
            "--metrics-addr=0",  # no metrics server: one port fewer to race for
            "--log-stdout-encoder=console",
        ]

    def start(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Start and wait for /readyz; a probe port taken between picking and binding it is retried."""
        if self.binary is None:
            self.binary = ensure_operator(self.version.label, self.source)
        log_path = self.run_dir / f"kuberay-operator-{self.restarts}.log"
        self.log_paths.append(log_path)
        for attempt in range(1, attempts + 1):
            probe_port = free_port()
            process = self.spawn("kuberay-operator", self._argv(probe_port), log_path,
                                 {"KUBECONFIG": str(self.kubeconfig)})
            self.process = process.start()
            readyz = functools.partial(http_ok, f"http://127.0.0.1:{probe_port}/readyz")
            try:
                wait_until(readyz, timeout=timeout,
                           what=f"KubeRay operator {self.version.label} /readyz", processes=[process])
                break
            except ProviderError:
                if attempt == attempts or "address already in use" not in process.tail(20):
                    raise
                log.info("operator's probe port %d was taken meanwhile; retrying", probe_port)
                process.stop()
        log.info("KubeRay operator %s running (pid %s, log %s)", self.version.label, process.pid, log_path)

    def ready(self) -> None:
        """Ready since :meth:`start` returned (it waits for /readyz)."""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again: the operator loses its in-memory Serve-config cache (upstream issue 4717)."""
        self.stop()
        self.restarts += 1
        self.start(timeout)
