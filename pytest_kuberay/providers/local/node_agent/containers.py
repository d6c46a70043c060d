"""A container: one process group inside the pod's namespaces, restarted by the pod worker as its policy says.

A run is ``nsenter ... -- setsid env --chdir=<workingDir> -- <command> <args>`` (see
:meth:`PodSandbox.enter_argv`). nsenter stays on the host side and waits for its child, the
container's main process, which leads a session and process group of its own inside the
pod: signals go to that group, so the container gets SIGTERM while nsenter keeps waiting
and reports the real exit status. Output (stdout and stderr) is appended to the
container's log file, which outlives the pod for artifact collection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_kuberay.providers.local.node_agent.probes import ProbeRunner

__all__ = ["ContainerProcess", "ContainerRuntime", "Termination", "now_rfc3339"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]


def now_rfc3339() -> str:
    """The current time as the API writes it (seconds, UTC)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Termination:
    """How a container run ended, as ``state.terminated`` reports it."""

    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    message: str = ""

    def to_json(self) -> JSON:
        """The ``ContainerStateTerminated`` form."""
        data: JSON = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.message:
            data["message"] = self.message
        return data


def _exit_code(returncode: int) -> int:
    """nsenter re-raises a fatal signal on itself: a negative return code means 128 + signal, as in a container."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerProcess:
    """One run of a container's command inside the pod."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.started_at = ""
        self._popen: subprocess.Popen[bytes] | None = None
        self._inner: int | None = None

    @property
    def pid(self) -> int:
        """The host-side nsenter process (its group is ours to kill)."""
        assert self._popen is not None
        return self._popen.pid

    def start(self) -> ContainerProcess:
        """Start it; raises OSError if nsenter cannot be run."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"# {now_rfc3339()} starting: {' '.join(self.argv)}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.started_at = now_rfc3339()
        return self

    def inner_pid(self, wait: float = 1.0) -> int | None:
        """Host PID of the container's main process (nsenter's child, a session leader), once it has one."""
        if self._inner is not None or self._popen is None:
            return self._inner
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self._popen.poll() is None:
            try:
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
                if children and os.getpgid(int(children[0])) == int(children[0]):
                    self._inner = int(children[0])
                    return self._inner
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        return None

    def poll(self) -> int | None:
        """Its exit code (128+signal when killed), or None while it runs."""
        if self._popen is None:
            return None
        code = self._popen.poll()
        return None if code is None else _exit_code(code)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container's process group (not to nsenter)."""
        inner = self.inner_pid()
        if inner is not None and self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inner, sig)

    def kill(self) -> None:
        """SIGKILL the container's group and nsenter's, then reap nsenter."""
        if self._popen is None:
            return
        self.signal(signal.SIGKILL)
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(5)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the exit; its code or None."""
        if self._popen is None:
            return None
        try:
            return _exit_code(self._popen.wait(timeout))
        except subprocess.TimeoutExpired:
            return None


@dataclass
class ContainerRuntime:
    """What the pod worker knows about one container of the pod, across its runs."""

    spec: JSON
    init: bool = False
    restart_count: int = 0
    process: ContainerProcess | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    terminated: Termination | None = None  # current state, when not running
    last_termination: Termination | None = None
    backoff_until: float = 0.0
    done: bool = False  # an init container that succeeded
    probes: dict[str, ProbeRunner] = field(default_factory=dict)
    liveness_killed: bool = False
    ran_once: bool = False

    @property
    def name(self) -> str:
        """The container's name."""
        return str(self.spec["name"])

    @property
    def sidecar(self) -> bool:
        """An init container with ``restartPolicy: Always`` (a native sidecar)."""
        return self.init and self.spec.get("restartPolicy") == "Always"

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self.process is not None and self.process.poll() is None

    @property
    def started(self) -> bool:
        """Running and past its startup probe (if any)."""
        startup = self.probes.get("startup")
        return self.running and (startup is None or startup.healthy)

    @property
    def ready(self) -> bool:
        """Running, started, and its readiness probe (if any) says ready."""
        readiness = self.probes.get("readiness")
        return self.started and (readiness is None or readiness.healthy)

    def stop_probes(self) -> None:
        """Stop the probes of the current run."""
        for probe in self.probes.values():
            probe.stop()
        self.probes = {}
