"""Where local clusters record what they own, so leftovers of a crashed run can be removed safely.

Every local cluster has a run directory ``/tmp/pytest-kuberay/runs/<run-id>/`` with a
``state.json``: the owner (pytest) PID and start time, its node network (namespace and host
veth ``pkr<n>``), its cgroup root, and each process it started with that process's start
time. A run whose owner is gone is stale; reaping it kills its recorded processes (only if
PID *and* start time still match, so a reused PID is never hit), every process that still
carries the run's marker in its environment (containerd's shims) and every process in its
cgroups (the pods), removes the cgroups, the network namespace and veth, unmounts anything
left under the run directory and removes the directory.

The local provider reaps at start; people can too: ``pytest-kuberay reap``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from pytest_kuberay._support.processes import ManagedProcess, is_running, process_started_at
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local import network

__all__ = [
    "RUN_MARKER_ENV",
    "ReapedRun",
    "RecordedProcess",
    "RunRecord",
    "RunState",
    "kept_runs",
    "kill_marked_processes",
    "main",
    "marker_env",
    "new_run",
    "reap_stale_runs",
    "runs_root",
    "teardown_run",
]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
#: Every process a run starts carries this variable (value: the run ID), children inherit it.
RUN_MARKER_ENV = "PYTEST_KUBERAY_RUN"
#: A run directory without a readable state.json younger than this may still be being created.
_GRACE_SECONDS = 60.0


def runs_root() -> Path:
    """Parent of all run directories; ``$PYTEST_KUBERAY_RUNS`` overrides it (tests use a tmp dir)."""
    return Path(os.environ.get("PYTEST_KUBERAY_RUNS", "/tmp/pytest-kuberay/runs"))


def boot_id() -> str:
    """Identifies this boot: recorded PIDs and start times only mean something within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def marker_env(run_id: str) -> dict[str, str]:
    """Environment to add to every process of a run, so the reaper finds its descendants too."""
    return {RUN_MARKER_ENV: run_id}


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))


@dataclass(frozen=True)
class RecordedProcess:
    """A process a run started: PID plus start time (epoch seconds, as psutil gives it)."""

    name: str
    pid: int
    started_at: float | None


@dataclass
class RunState:
    """The content of ``state.json``."""

    run_id: str
    owner_pid: int
    owner_started_at: float | None
    boot_id: str
    created: float
    #: Name of the node network: namespace and host veth (``pkr<n>``).
    network: str | None = None
    #: kubelet's cgroup root, e.g. ``/pytest-kuberay/<run id>``.
    cgroup_root: str | None = None
    #: A kept cluster (``--kuberay-keep-cluster``, ``pytest-kuberay cluster up``) outlives its owner.
    kept: bool = False
    #: How later processes reach a kept cluster: api_url, kubeconfig, gateway_url, ...
    endpoints: dict[str, str] = field(default_factory=dict)
    processes: list[RecordedProcess] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RunState:
        """Parse ``state.json``; raises KeyError/TypeError/ValueError on a malformed file."""
        procs = data.get("processes", [])
        return cls(
            run_id=str(data["run_id"]),
            owner_pid=int(str(data["owner_pid"])),
            owner_started_at=_opt_float(data.get("owner_started_at")),
            boot_id=str(data.get("boot_id", "")),
            created=float(str(data.get("created", 0))),
            network=None if data.get("network") is None else str(data["network"]),
            cgroup_root=None if data.get("cgroup_root") is None else str(data["cgroup_root"]),
            kept=bool(data.get("kept", False)),
            endpoints={str(k): str(v) for k, v in dict(data.get("endpoints") or {}).items()},  # type: ignore[call-overload]
            processes=[
                RecordedProcess(str(p["name"]), int(p["pid"]), _opt_float(p.get("started_at")))
                for p in (procs if isinstance(procs, list) else [])
            ],
        )

    def owner_alive(self) -> bool:
        """True if the owning process still runs (same boot, same PID, same start time)."""
        if self.boot_id and self.boot_id != boot_id():
            return False
        return is_running(self.owner_pid, self.owner_started_at)

    def process(self, name: str) -> RecordedProcess | None:
        return next((p for p in self.processes if p.name == name), None)

    def kept_alive(self) -> bool:
        """A kept cluster whose API server still runs: it is in use, whoever started it."""
        if not self.kept or (self.boot_id and self.boot_id != boot_id()):
            return False
        apiserver = self.process("kube-apiserver")
        return apiserver is not None and is_running(apiserver.pid, apiserver.started_at)

    def in_use(self) -> bool:
        """Not to be reaped: its owner runs, or it is a kept cluster that still runs."""
        return self.owner_alive() or self.kept_alive()


class RunRecord:
    """A run directory and its ``state.json``, rewritten atomically on every change."""

    def __init__(self, run_dir: Path, state: RunState) -> None:
        self.run_dir = run_dir
        self.state = state
        self._lock = threading.Lock()  # processes may be started (and recorded) from several threads

    @property
    def run_id(self) -> str:
        """The run's ID (the directory's name)."""
        return self.state.run_id

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        """Read ``run_dir/state.json``."""
        data = json.loads((run_dir / STATE_FILE).read_text())
        return cls(run_dir, RunState.from_json(data))

    def save(self) -> None:
        """Write ``state.json`` via a temp file and rename, so a reader never sees half a file."""
        tmp = self.run_dir / f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(asdict(self.state), indent=2) + "\n")
        os.replace(tmp, self.run_dir / STATE_FILE)

    def set_network(self, name: str | None) -> None:
        """Record the node network (namespace and veth) this run owns."""
        with self._lock:
            self.state.network = name
            self.save()

    def set_cgroup_root(self, path: str | None) -> None:
        """Record the cgroup root this run's kubelet uses, before anything is created in it."""
        with self._lock:
            self.state.cgroup_root = path
            self.save()

    def keep(self, endpoints: dict[str, str]) -> None:
        """Mark the run as a kept cluster and say how to reach it."""
        with self._lock:
            self.state.kept = True
            self.state.endpoints = dict(endpoints)
            self.save()

    def add_process(self, proc: ManagedProcess) -> None:
        """Record a started process (call right after start, before waiting for it)."""
        with self._lock:
            self.state.processes.append(RecordedProcess(proc.name, proc.pid, proc.started_at))
            self.save()

    def forget_processes(self, pids: Sequence[int]) -> None:
        """Drop processes that were stopped cleanly."""
        gone = set(pids)
        with self._lock:
            self.state.processes = [p for p in self.state.processes if p.pid not in gone]
            self.save()

    def teardown(self) -> list[str]:
        """Kill what is left of this run, delete its network and cgroups and its directory; say what was removed."""
        return teardown_run(self.run_dir, self.state)


def new_run(root: Path | None = None) -> RunRecord:
    """Create a run directory owned by this process, with its ``state.json`` written first thing."""
    root = root or runs_root()
    root.mkdir(parents=True, exist_ok=True)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    run_dir = root / run_id
    run_dir.mkdir(mode=0o700)
    state = RunState(
        run_id=run_id,
        owner_pid=os.getpid(),
        owner_started_at=process_started_at(os.getpid()),
        boot_id=boot_id(),
        created=time.time(),
    )
    record = RunRecord(run_dir, state)
    record.save()
    log.debug("new run %s in %s", run_id, run_dir)
    return record


def _marked_processes(run_id: str) -> list[psutil.Process]:
    """Live processes whose environment carries this run's marker."""
    needle = f"{run_id}"
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if proc.environ().get(RUN_MARKER_ENV) == needle:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def kill_marked_processes(run_id: str, names: set[str] | None = None) -> list[str]:
    """SIGKILL processes marked with ``run_id`` (only those called one of ``names``, when given)."""
    killed = []
    for proc in _marked_processes(run_id):
        try:
            name = proc.name()
            if names is not None and name not in names:
                continue
            proc.kill()
            killed.append(f"process {name} (pid {proc.pid}, marked {RUN_MARKER_ENV}={run_id})")
        except psutil.Error:
            continue
    return killed


def _kill(pid: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)


def _unmount_below(run_dir: Path) -> list[str]:
    """Lazily unmount whatever is mounted under ``run_dir`` in our mount namespace, deepest first.

    The node mounts in its own namespace, so normally there is nothing; this keeps a reap from
    ever deleting into a mounted filesystem.
    """
    prefix = str(run_dir.resolve()) + os.sep
    mounts = sorted({p.mountpoint for p in psutil.disk_partitions(all=True) if p.mountpoint.startswith(prefix)},
                    key=len, reverse=True)
    removed = []
    for mountpoint in mounts:
        if subprocess.run(["umount", "--lazy", mountpoint], capture_output=True, check=False).returncode == 0:
            removed.append(f"mount {mountpoint}")
    return removed


def teardown_run(run_dir: Path, state: RunState | None) -> list[str]:
    """Kill a run's processes, remove its cgroups and network, remove its directory. Returns what was removed.

    Recorded processes are killed with their process group only if PID and start time
    still match; then anything still carrying the run's marker, then what runs in its cgroups.
    """
    removed: list[str] = []
    if state is not None:
        same_boot = not state.boot_id or state.boot_id == boot_id()
        for proc in state.processes if same_boot else []:
            if proc.started_at is not None and is_running(proc.pid, proc.started_at):
                _kill(proc.pid, group=True)  # started with a new session: pgid == pid
                removed.append(f"process {proc.name} (pid {proc.pid})")
        removed += kill_marked_processes(state.run_id)
        if state.cgroup_root:
            from pytest_kuberay.providers.local.node.cgroups import CgroupTree

            try:
                removed += CgroupTree(Path(state.cgroup_root).name).remove()
            except ProviderError as exc:
                log.warning("run %s: %s", state.run_id, exc)
        try:
            if state.network:
                if network.delete_link(state.network):
                    removed.append(f"veth {state.network}")
                if network.delete_netns(state.network):
                    removed.append(f"network namespace {state.network}")
        except ProviderError as exc:
            log.warning("run %s: %s", state.run_id, exc)
    if run_dir.exists():
        removed += _unmount_below(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"directory {run_dir}")
    return removed


def kept_runs(root: Path | None = None) -> list[RunRecord]:
    """Kept clusters that still run, oldest first."""
    root = root or runs_root()
    found = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            record = RunRecord.load(run_dir)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if record.state.kept_alive():
            found.append(record)
    return found


@dataclass(frozen=True)
class ReapedRun:
    """One stale run that was removed, and what it left behind."""

    run_id: str
    owner_pid: int | None
    removed: list[str]


def reap_stale_runs(root: Path | None = None) -> list[ReapedRun]:
    """Tear down every run whose owner is dead; leave live runs (other workers, other sessions) alone."""
    root = root or runs_root()
    reaped: list[ReapedRun] = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if not run_dir.is_dir():
            continue
        try:
            record = RunRecord.load(run_dir)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            age = time.time() - run_dir.stat().st_mtime
            if age < _GRACE_SECONDS:
                continue  # probably being created right now
            log.warning("removing run dir %s with unreadable state (%s)", run_dir, exc)
            reaped.append(ReapedRun(run_dir.name, None, teardown_run(run_dir, None)))
            continue
        if record.state.in_use():
            continue
        log.info("reaping stale run %s (owner pid %d is gone)", record.run_id, record.state.owner_pid)
        reaped.append(ReapedRun(record.run_id, record.state.owner_pid, record.teardown()))
    try:
        for name, owner in network.our_links().items():
            if not Path(owner).exists():
                gone = [f"veth {name}"] if network.delete_link(name) else []
                gone += [f"network namespace {name}"] if network.delete_netns(name) else []
                reaped.append(ReapedRun(Path(owner).name, None, [f"{g} (its run directory {owner} is gone)"
                                                                 for g in gone]))
    except ProviderError as exc:
        log.warning("could not look for leftover node networks: %s", exc)
    return reaped


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``--reap`` removes stale runs and prints what it removed; ``--list`` shows the runs."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_kuberay.providers.local.run_registry",
        description="Inspect or clean up local-provider runs (processes, networks, cgroups, run directories).",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--reap", action="store_true", help="tear down runs whose owning pytest is gone")
    action.add_argument("--list", action="store_true", help="list runs and whether their owner is alive")
    parser.add_argument("--root", type=Path, default=None, help=f"runs directory (default: {runs_root()})")
    args = parser.parse_args(argv)
    root = args.root or runs_root()
    if args.list:
        for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
            try:
                state = RunRecord.load(run_dir).state
                status = "kept" if state.kept_alive() else "alive" if state.owner_alive() else "stale"
                print(
                    f"{run_dir.name}  owner {state.owner_pid} {status}  network {state.network or '-'}  "
                    f"{len(state.processes)} processes"
                )
            except (OSError, ValueError, KeyError, TypeError):
                print(f"{run_dir.name}  <no readable {STATE_FILE}>")
        return 0
    reaped = reap_stale_runs(root)
    for run in reaped:
        print(f"removed run {run.run_id} (owner pid {run.owner_pid if run.owner_pid is not None else '?'}):")
        for item in run.removed:
            print(f"  {item}")
    if not reaped:
        print(f"no stale runs under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
