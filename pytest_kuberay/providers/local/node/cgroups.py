"""The cgroup subtree one local node owns: kubelet's ``cgroupRoot``, created and removed by us.

kubelet (cgroupfs driver) puts every pod under ``<cgroup root>/kubepods/...`` in each
mounted cgroup v1 hierarchy (and in the cgroup v2 tree where that is the layout). Giving
each run its own root, ``/pytest-kuberay/<run id>``, keeps runs apart and makes cleanup
exact: every process left in the subtree belongs to the run's pods, and removing the
subtree leaves no ``kubepods`` cgroup behind.

kubelet refuses a ``cgroupRoot`` that does not exist, so we create it first; cpuset
children start with empty ``cpus``/``mems`` in cgroup v1 and must copy their parent's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import psutil

from pytest_kuberay.errors import ProviderError

__all__ = ["CgroupTree", "cgroup_mounts"]

log = logging.getLogger(__name__)

#: Parent of every run's cgroup root.
CGROUP_PARENT = "pytest-kuberay"


def cgroup_mounts() -> list[Path]:
    """Mount points of the cgroup hierarchies (v1 controllers, the v1 ``name=`` ones, and v2)."""
    mounts: list[Path] = []
    for part in psutil.disk_partitions(all=True):
        if part.fstype in ("cgroup", "cgroup2") and part.mountpoint not in (str(m) for m in mounts):
            mounts.append(Path(part.mountpoint))
    return mounts


class CgroupTree:
    """``/<CGROUP_PARENT>/<name>`` in every cgroup hierarchy of the machine."""

    def __init__(self, name: str, mounts: list[Path] | None = None) -> None:
        self.name = name
        self.path = f"/{CGROUP_PARENT}/{name}"
        self._mounts = mounts

    @property
    def mounts(self) -> list[Path]:
        if self._mounts is None:
            self._mounts = cgroup_mounts()
        return self._mounts

    def dirs(self) -> list[Path]:
        """This tree's directory in each hierarchy (whether or not it exists)."""
        return [mount / CGROUP_PARENT / self.name for mount in self.mounts]

    def create(self) -> CgroupTree:
        """Create the root in every hierarchy; a cpuset root inherits its parent's CPUs and memory nodes."""
        if not self.mounts:
            raise ProviderError("no cgroup hierarchy is mounted under /sys/fs/cgroup: kubelet cannot run pods here.")
        for mount in self.mounts:
            for directory in (mount / CGROUP_PARENT, mount / CGROUP_PARENT / self.name):
                try:
                    directory.mkdir(exist_ok=True)
                except OSError as exc:
                    raise ProviderError(f"cannot create cgroup {directory}: {exc}") from exc
                _inherit_cpuset(directory)
        return self

    def pids(self) -> set[int]:
        """Every process in the tree, in any hierarchy."""
        found: set[int] = set()
        for root in self.dirs():
            if not root.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(root):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError, ValueError):
                        found.update(int(line) for line in (Path(dirpath) / "cgroup.procs").read_text().split())
        return found

    def kill_all(self, timeout: float = 10.0) -> int:
        """SIGKILL every process in the tree until it is empty; return how many were killed."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return len(killed)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            if time.monotonic() > deadline:
                raise ProviderError(f"processes {sorted(pids)} stay in cgroup {self.path} after SIGKILL")
            time.sleep(0.05)

    def remove(self, timeout: float = 10.0) -> list[str]:
        """Kill what runs in the tree and remove its cgroups, deepest first. Returns what was removed."""
        removed: list[str] = []
        if not any(root.is_dir() for root in self.dirs()):
            return removed
        killed = self.kill_all(timeout)
        if killed:
            removed.append(f"{killed} processes in cgroup {self.path}")
        deadline = time.monotonic() + timeout
        for root in self.dirs():
            if not root.is_dir():
                continue
            while True:
                try:
                    _remove_tree(root)
                    break
                except OSError as exc:  # EBUSY while the kernel finishes tearing down killed tasks
                    if time.monotonic() > deadline:
                        raise ProviderError(f"cannot remove cgroup {root}: {exc}") from exc
                    time.sleep(0.1)
            removed.append(f"cgroup {root}")
            with contextlib.suppress(OSError):  # the shared parent goes once no run uses it
                root.parent.rmdir()
        return removed


def _inherit_cpuset(directory: Path) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        own, parent = directory / name, directory.parent / name
        if own.exists() and parent.exists() and not own.read_text().strip():
            own.write_text(parent.read_text().strip())


def _remove_tree(root: Path) -> None:
    """rmdir every cgroup below and including ``root``; cgroup files vanish with their directory."""
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda entry: -entry[0].count(os.sep)):
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(dirpath)
