"""Where local clusters record what they own, so leftovers of a crashed run can be removed safely.

Every local cluster has a run directory ``/tmp/pytest-kuberay/runs/<run-id>/`` with a
``state.json``: the owner (pytest) PID and start time, its bridge, and each process it
started with that process's start time. A run whose owner is gone is stale; reaping it
kills its recorded processes (only if PID *and* start time still match, so a reused PID
is never hit), plus any process that still carries the run's marker in its environment,
deletes its bridge and removes the directory.

The local provider reaps at start; people can too:
``python -m pytest_kuberay.providers.local.run_registry --reap``.
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
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local import network
from pytest_kuberay.providers.local.processes import ManagedProcess, is_running, process_start_ticks

__all__ = [
    "RUN_MARKER_ENV",
    "ReapedRun",
    "RecordedProcess",
    "RunRecord",
    "RunState",
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
    """Identifies this boot: start times in clock ticks only compare within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def marker_env(run_id: str) -> dict[str, str]:
    """Environment to add to every process of a run, so the reaper finds its descendants too."""
    return {RUN_MARKER_ENV: run_id}


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


@dataclass(frozen=True)
class RecordedProcess:
    """A process a run started: PID plus start time in clock ticks since boot."""

    name: str
    pid: int
    start_ticks: int | None


@dataclass
class RunState:
    """The content of ``state.json``."""

    run_id: str
    owner_pid: int
    owner_start_ticks: int | None
    boot_id: str
    created: float
    bridge: str | None = None
    processes: list[RecordedProcess] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RunState:
        """Parse ``state.json``; raises KeyError/TypeError/ValueError on a malformed file."""
        procs = data.get("processes", [])
        return cls(
            run_id=str(data["run_id"]),
            owner_pid=int(str(data["owner_pid"])),
            owner_start_ticks=_opt_int(data.get("owner_start_ticks")),
            boot_id=str(data.get("boot_id", "")),
            created=float(str(data.get("created", 0))),
            bridge=None if data.get("bridge") is None else str(data["bridge"]),
            processes=[
                RecordedProcess(str(p["name"]), int(p["pid"]), _opt_int(p.get("start_ticks")))
                for p in (procs if isinstance(procs, list) else [])
            ],
        )

    def owner_alive(self) -> bool:
        """True if the owning process still runs (same boot, same PID, same start time)."""
        if self.boot_id and self.boot_id != boot_id():
            return False
        return is_running(self.owner_pid, self.owner_start_ticks)


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

    def set_bridge(self, name: str | None) -> None:
        """Record the bridge this run owns."""
        with self._lock:
            self.state.bridge = name
            self.save()

    def add_process(self, proc: ManagedProcess) -> None:
        """Record a started process (call right after start, before waiting for it)."""
        with self._lock:
            self.state.processes.append(RecordedProcess(proc.name, proc.pid, proc.start_ticks))
            self.save()

    def forget_processes(self, pids: Sequence[int]) -> None:
        """Drop processes that were stopped cleanly."""
        gone = set(pids)
        with self._lock:
            self.state.processes = [p for p in self.state.processes if p.pid not in gone]
            self.save()

    def teardown(self) -> list[str]:
        """Kill what is left of this run, delete its bridge and remove its directory; say what was removed."""
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
        owner_start_ticks=process_start_ticks(os.getpid()),
        boot_id=boot_id(),
        created=time.time(),
    )
    record = RunRecord(run_dir, state)
    record.save()
    log.debug("new run %s in %s", run_id, run_dir)
    return record


def _marked_pids(run_id: str) -> list[int]:
    """PIDs of live processes whose environment carries this run's marker."""
    needle = f"{RUN_MARKER_ENV}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def _kill(pid: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)


def teardown_run(run_dir: Path, state: RunState | None) -> list[str]:
    """Kill a run's processes, delete its bridge, remove its directory. Returns what was removed.

    Recorded processes are killed with their process group only if PID and start time
    still match; then anything still carrying the run's marker is killed.
    """
    removed: list[str] = []
    if state is not None:
        same_boot = not state.boot_id or state.boot_id == boot_id()
        killed: set[int] = set()
        for proc in state.processes if same_boot else []:
            if proc.start_ticks is not None and is_running(proc.pid, proc.start_ticks):
                _kill(proc.pid, group=True)  # started with a new session: pgid == pid
                killed.add(proc.pid)
                removed.append(f"process {proc.name} (pid {proc.pid})")
        for pid in _marked_pids(state.run_id):
            if pid in killed:  # SIGKILLed above, still exiting
                continue
            _kill(pid, group=False)
            removed.append(f"process pid {pid} (marked {RUN_MARKER_ENV}={state.run_id})")
        agent_dir = run_dir / "node-agent"
        if agent_dir.exists():  # pods' network namespaces and veths outlive a killed node agent
            from pytest_kuberay.providers.local.node_agent.state import reap as reap_node_agent

            removed += reap_node_agent(agent_dir)
        try:
            if state.bridge and network.delete_bridge(state.bridge):
                removed.append(f"bridge {state.bridge}")
        except ProviderError as exc:
            log.warning("run %s: %s", state.run_id, exc)
    if run_dir.exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"directory {run_dir}")
    return removed


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
        if record.state.owner_alive():
            continue
        log.info("reaping stale run %s (owner pid %d is gone)", record.run_id, record.state.owner_pid)
        reaped.append(ReapedRun(record.run_id, record.state.owner_pid, record.teardown()))
    try:
        for name, owner in network.our_bridges().items():
            if not Path(owner).exists() and network.delete_bridge(name):
                reaped.append(ReapedRun(Path(owner).name, None, [f"bridge {name} (its run directory {owner} is gone)"]))
    except ProviderError as exc:
        log.warning("could not look for leftover bridges: %s", exc)
    return reaped


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``--reap`` removes stale runs and prints what it removed; ``--list`` shows the runs."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_kuberay.providers.local.run_registry",
        description="Inspect or clean up local-provider runs (processes, bridges, run directories).",
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
                status = "alive" if state.owner_alive() else "stale"
                print(
                    f"{run_dir.name}  owner {state.owner_pid} {status}  bridge {state.bridge or '-'}  "
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
