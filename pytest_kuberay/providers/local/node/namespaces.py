"""The node's own namespaces: its network namespace, and a private mount namespace held by a process.

kubelet, containerd and the container shims mount a lot: image snapshots, volumes,
secrets, pod network namespaces. Running them in a private mount namespace keeps every
one of those mounts off the host's mount table, and the kernel drops them all when the
last process of the namespace exits, even after a crash. kubelet also insists on a few
fixed host paths (``/var/log/containers``); a tmpfs on ``/var/log`` inside the
namespace keeps those off the host too.

A ``sleep`` process holds the namespaces (``nsenter`` into the node network namespace,
then ``unshare --mount --propagation private``); every node component joins them with
``nsenter --target <holder> --mount --net``. Paths given to them must be absolute:
joining a mount namespace resets the working directory.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import psutil

from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, is_running, wait_until
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.host_tools import require_commands
from pytest_kuberay.providers.local.network import NodeNetwork

__all__ = ["KUBELET_ROOT", "NodeNamespaces"]

log = logging.getLogger(__name__)

#: Host directories kubelet and containerd write to whatever their configuration says (device-plugin
#: sockets, /var/log/containers, containerd's shim sockets); a tmpfs over each inside the namespace keeps
#: them off the host. Inside, sockets get the short default paths they expect: a Unix socket path may
#: not exceed 108 bytes, and a run directory under a pytest tmp_path easily does.
MASKED_DIRS = ("/var/log", "/var/lib", "/run")
#: Where kubelet's root directory appears inside the namespace (bound from the run directory).
KUBELET_ROOT = "/var/lib/kubelet"


class NodeNamespaces:
    """The holder process of the node's mount namespace, inside the node's network namespace."""

    def __init__(self, network: NodeNetwork, log_path: Path, spawn: ProcessFactory, kubelet_root: Path) -> None:
        self.network = network
        self.log_path = log_path
        self.kubelet_root = kubelet_root
        self.spawn = spawn
        self.holder: ManagedProcess | None = None
        self.holder_pid: int | None = None
        tools = require_commands("nsenter", "unshare", "mount", "sleep")
        self._nsenter, self._unshare = tools["nsenter"], tools["unshare"]
        self._mount, self._sleep = tools["mount"], tools["sleep"]

    def start(self, timeout: float = 10.0) -> NodeNamespaces:
        """Start the holder and wait until it sits in its own mount namespace with the masks in place."""
        self.kubelet_root.mkdir(parents=True, exist_ok=True)
        steps = [f"{self._mount} -t tmpfs -o mode=0755 pytest-kuberay-node {d}" for d in MASKED_DIRS]
        bind = f"{self._mount} --bind {shlex.quote(str(self.kubelet_root))} {KUBELET_ROOT}"
        steps += [f"mkdir -p {KUBELET_ROOT}", bind, f"exec {self._sleep} infinity"]
        argv = [self._nsenter, f"--net={self.network.netns_path}", "--", self._unshare, "--mount",
                "--propagation", "private", "--", "sh", "-c", " && ".join(steps)]
        self.holder = self.spawn("node-namespaces", argv, self.log_path, None).start()
        own_mnt = os.readlink("/proc/self/ns/mnt")
        holder = self.holder

        def settled() -> bool | str:
            try:
                proc = psutil.Process(holder.pid)
                name, mnt = proc.name(), os.readlink(f"/proc/{holder.pid}/ns/mnt")
            except (psutil.Error, OSError) as exc:
                return f"holder not inspectable: {exc}"
            return (name == "sleep" and mnt != own_mnt) or f"holder is {name!r} in {mnt}"

        wait_until(settled, condition=lambda ok: ok, timeout=timeout,
                   what="the node's mount namespace holder to settle", processes=[holder])
        self.holder_pid = holder.pid
        log.debug("node namespaces held by pid %d (netns %s)", holder.pid, self.network.netns)
        return self

    def attach(self, pid: int, started_at: float | None) -> NodeNamespaces:
        """Use the holder of a kept cluster, started by another process."""
        if not is_running(pid, started_at):
            raise ProviderError(f"the kept node's namespace holder (pid {pid}) is gone: tear the cluster down "
                                "(`pytest-kuberay cluster down`) and start a new one")
        self.holder_pid = pid
        return self

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the node's mount and network namespaces."""
        if self.holder_pid is None or not is_running(self.holder_pid):
            raise ProviderError("the node's namespace holder is not running")
        return [self._nsenter, f"--target={self.holder_pid}", "--mount", "--net", "--", *argv]

    def wrap_net(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the node's network namespace only (host mounts), e.g. kube-proxy, CoreDNS."""
        return [self._nsenter, f"--net={self.network.netns_path}", "--", *argv]

    def stop(self) -> None:
        if self.holder is not None:
            self.holder.stop(grace=2.0)
            self.holder = None
        self.holder_pid = None
