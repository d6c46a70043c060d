"""The Docker-free local cluster: the control plane, and the means to start more processes of its run.

Everything runs as processes of this machine, recorded in the run's
``state.json`` and marked with the run id in their environment, so a crashed
session's leftovers are reaped by the next one.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_kuberay._support.processes import ManagedProcess
from pytest_kuberay._support.toolchain import MIN_GO
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.local.control_plane import LocalControlPlane, run_control_plane
from pytest_kuberay.providers.local.host_tools import LOCAL_PROVIDER_COMMANDS, require_commands
from pytest_kuberay.providers.local.run_registry import RunRecord, marker_env

__all__ = ["LocalCluster", "attach_local_cluster", "check_local_prerequisites", "cluster_handle", "local_cluster"]

log = logging.getLogger(__name__)


def check_local_prerequisites() -> None:
    """Fail with one message naming everything the local provider lacks on this machine."""
    problems = []
    if os.geteuid() != 0:
        problems.append("it must run as root (network namespaces, mounts, cgroups)")
    try:
        require_commands(*LOCAL_PROVIDER_COMMANDS)
    except ProviderError as exc:
        problems.append(str(exc).removeprefix("the local provider needs ").rstrip("."))
    if shutil.which("go") is None:
        problems.append(f"no `go` on PATH to build Kubernetes, containerd, etcd, Traefik and KubeRay "
                        f"(install Go >= {MIN_GO})")
    if problems:
        raise ProviderError("the local provider cannot run here: " + "; ".join(problems) + ".")


@dataclass
class LocalCluster:
    """A running local cluster and the means to start more processes that belong to its run."""

    handle: ClusterHandle
    control_plane: LocalControlPlane
    run: RunRecord

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def kept(self) -> bool:
        """Its processes outlive this Python process (``--kuberay-keep-cluster``, ``cluster up``)."""
        return not self.control_plane.die_with_parent

    def process(self, name: str, argv: Sequence[str], log_path: Path,
                env: Mapping[str, str] | None = None) -> ManagedProcess:
        """A ManagedProcess that the run registry knows about once started (reaped after a crash)."""
        return _RecordedProcess(self.run, name, argv, log_path, {**(env or {}), **marker_env(self.run.run_id)},
                                die_with_parent=not self.kept)


def cluster_handle(control_plane: LocalControlPlane, run: RunRecord) -> ClusterHandle:
    return ClusterHandle(
        name=f"local-{run.run_id}",
        provider="local",
        kubeconfig=control_plane.kubeconfig,
        default_gateway_class="traefik",
        log_files=dict(control_plane.log_paths),
    )


class _RecordedProcess(ManagedProcess):
    def __init__(self, run: RunRecord, name: str, argv: Sequence[str], log_path: Path,
                 env: Mapping[str, str], die_with_parent: bool = True) -> None:
        super().__init__(name, argv, log_path, env=env, die_with_parent=die_with_parent)
        self._run = run

    def start(self) -> ManagedProcess:
        super().start()
        self._run.add_process(self)
        return self

    def stop(self, grace: float = 10.0) -> int | None:
        pid = self.pid
        code = super().stop(grace)
        self._run.forget_processes([pid])
        return code


@contextmanager
def local_cluster(timeout: float = 120.0, keep_logs_in: Path | None = None,
                  keep: bool = False) -> Iterator[LocalCluster]:
    """Bring up the control plane on its own node network; tear everything down on exit, failure or Ctrl-C.

    ``keep``: once started, leave it running for later sessions (a kept cluster).
    """
    check_local_prerequisites()
    with run_control_plane(timeout=timeout, keep_logs_in=keep_logs_in, keep=keep) as control_plane:
        run = control_plane.run
        if run is None:
            raise RuntimeError("run_control_plane always records its run")
        yield LocalCluster(cluster_handle(control_plane, run), control_plane, run)


def attach_local_cluster(run: RunRecord) -> LocalCluster:
    """A kept cluster started by another process."""
    control_plane = LocalControlPlane.attach(run)
    return LocalCluster(cluster_handle(control_plane, run), control_plane, run)
