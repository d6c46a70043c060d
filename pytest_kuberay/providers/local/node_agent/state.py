"""The agent's record of what it created on the host, so leftovers of a crashed agent can be removed.

``<agent dir>/node-agent-state.json`` lists, per pod: its network namespace, host veth, pod
directory, and every process started for it with its start time (so a reused PID is never
killed). It is rewritten atomically on every change. :func:`reap` removes all of it; the
agent calls it at start, and the run registry (or a person) can call it after a crash:
``python -m pytest_kuberay.providers.local.node_agent --reap <agent dir>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kuberay.providers.local.node_agent.pod_network import delete_pod_network
from pytest_kuberay.providers.local.processes import is_running, process_start_ticks

__all__ = ["STATE_FILE", "AgentState", "PodRecord", "reap", "recorded_pods"]

log = logging.getLogger(__name__)

STATE_FILE = "node-agent-state.json"


class AgentState:
    """Thread-safe view of the state file; every change is saved at once."""

    def __init__(self, agent_dir: Path) -> None:
        self.path = agent_dir / STATE_FILE
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {
            "agent_pid": os.getpid(),
            "agent_start_ticks": process_start_ticks(os.getpid()),
            "pods": {},
        }

    def _save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self._data, indent=1) + "\n")
        os.replace(tmp, self.path)

    def save(self) -> None:
        """Write the file (the agent does it once at start)."""
        with self._lock:
            self._save()

    def add_pod(self, uid: str, *, name: str, netns: str, host_veth: str, ip: str, pod_dir: str) -> None:
        """Record a pod before anything is created for it."""
        with self._lock:
            self._data["pods"][uid] = {
                "name": name,
                "netns": netns,
                "host_veth": host_veth,
                "ip": ip,
                "dir": pod_dir,
                "processes": [],
            }
            self._save()

    def add_process(self, uid: str, pid: int) -> None:
        """Record a process started for pod ``uid`` (its process group is killed by the reaper)."""
        with self._lock:
            pod = self._data["pods"].get(uid)
            if pod is not None:
                pod["processes"].append([pid, process_start_ticks(pid)])
                self._save()

    def remove_pod(self, uid: str) -> None:
        """Forget a pod whose resources are all gone."""
        with self._lock:
            if self._data["pods"].pop(uid, None) is not None:
                self._save()


@dataclass(frozen=True)
class PodRecord:
    """What the state file says about one running pod (for tests, benchmarks and diagnostics)."""

    uid: str
    name: str  # namespace/name
    netns: str
    host_veth: str
    ip: str
    dir: Path
    pids: tuple[int, ...]  # holder first, then the launcher and every container run

    @property
    def holder_pid(self) -> int | None:
        """PID 1 of the pod's PID namespace (``nsenter -t`` it to enter the pod)."""
        return self.pids[0] if self.pids else None


def recorded_pods(agent_dir: Path) -> dict[str, PodRecord]:
    """The pods an agent currently records, by ``namespace/name`` (empty when it runs none)."""
    try:
        data = json.loads((agent_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    pods = {}
    for uid, pod in (data.get("pods") or {}).items():
        record = PodRecord(
            uid=uid,
            name=str(pod["name"]),
            netns=str(pod["netns"]),
            host_veth=str(pod["host_veth"]),
            ip=str(pod["ip"]),
            dir=Path(str(pod["dir"])),
            pids=tuple(int(pid) for pid, _ in pod.get("processes", [])),
        )
        pods[record.name] = record
    return pods


def _kill(pid: int, ticks: int | None) -> bool:
    if ticks is None or not is_running(pid, ticks):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # started with a new session: pgid == pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    return True


def reap(agent_dir: Path, *, stop_agent: bool = True) -> list[str]:
    """Remove every process, network namespace, veth and pod directory an agent recorded in ``agent_dir``.

    Killing a pod's holder (PID 1 of its PID namespace) kills everything in the pod and
    frees its mount namespace with all its mounts, which the host never saw. If the agent
    that wrote the file still runs, it is killed first (``stop_agent``), or a RuntimeError
    says so (an agent starting in a directory another live agent uses).
    """
    path = agent_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    agent_pid = int(data.get("agent_pid", 0))
    if agent_pid != os.getpid() and is_running(agent_pid, data.get("agent_start_ticks")):
        if not stop_agent:
            raise RuntimeError(f"another node agent (pid {agent_pid}) is running with directory {agent_dir}")
        log.info("agent pid %s is alive; killing it before reaping", agent_pid)
        _kill(agent_pid, data.get("agent_start_ticks"))
    removed: list[str] = []
    for uid, pod in (data.get("pods") or {}).items():
        for pid, ticks in pod.get("processes", []):
            if _kill(int(pid), ticks):
                removed.append(f"process {pid} of pod {pod.get('name')}")
        delete_pod_network(str(pod["netns"]), str(pod["host_veth"]))
        removed.append(f"netns {pod['netns']} and veth {pod['host_veth']} of pod {pod.get('name')} ({uid})")
        pod_dir = Path(str(pod.get("dir", "")))
        if pod.get("dir") and pod_dir.exists():
            shutil.rmtree(pod_dir, ignore_errors=True)
            removed.append(f"directory {pod_dir}")
    with contextlib.suppress(OSError):
        path.unlink()
    return removed
