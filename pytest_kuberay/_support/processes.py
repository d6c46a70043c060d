"""Supervised child processes: started in their own process group, stopped by PID, never by name.

The local provider runs etcd, the Kubernetes components, Traefik and the operator as
plain processes. Each gets its own session (so one signal reaches it and whatever it
spawned), a log file (shown when it fails), and dies with the process that started it
(so a crashed pytest leaves nothing behind). Stopping is by PID and process group only:
other pytest runs on the same machine have processes with the same names.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import psutil

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.errors import ProviderError

__all__ = [
    "ManagedProcess",
    "Supervisor",
    "is_running",
    "process_started_at",
    "run_tool",
    "wait_until",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 64 * 1024


def process_started_at(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch, as psutil reads it); None if it is gone.

    PID and start time together name one process for the life of the machine, so a
    recorded (pid, start) pair never matches a later process that reused the PID.
    """
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_running(pid: int, started_at: float | None = None) -> bool:
    """True if ``pid`` exists, is not a zombie, and (when given) started at ``started_at``.

    Zombies count as gone: PID 1 here does not reap orphans, so killed grandchildren stay
    zombies forever, but they hold no resources.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return started_at is None or abs(proc.create_time() - started_at) < 0.05
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: ask the kernel to SIGKILL the child when its parent goes away.

    Caveats:
    * PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
      process. ManagedProcess therefore always forks from one spawner thread that lives
      as long as the interpreter (``_spawn``), whichever thread calls start(): an operator
      restarted from a short-lived trigger thread was otherwise killed the moment that
      thread ended.
    * preexec_fn runs between fork and exec; Python warns it is unsafe with threads. It
      only calls prctl and getppid here (no locks, no allocation to speak of).
    * It covers the direct child only; grandchildren are reached through the process
      group when we stop it, and by the run registry's reaper after a crash.
    """
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="process-spawner")


def _spawn(popen: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Fork on the long-lived spawner thread, so a parent-death signal never fires early."""
    return _SPAWNER.submit(popen).result()


class ManagedProcess:
    """One supervised command: its own session and process group, output appended to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        *,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None
        self._started_at: float | None = None
        self._exit_code: int | None = None

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid {self.pid}, {'alive' if self.alive() else 'exited'}"
        return f"<ManagedProcess {self.name}: {state}>"

    @property
    def pid(self) -> int:
        """The process ID, which is also its process group and session ID."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._popen.pid

    @property
    def started_at(self) -> float | None:
        """Start time (epoch seconds), recorded so a reaper never kills a reused PID."""
        return self._started_at

    @property
    def exit_code(self) -> int | None:
        """The exit status once it exited (negative: killed by that signal), else None."""
        self.alive()
        return self._exit_code

    def start(self) -> ManagedProcess:
        """Start it; output goes to ``log_path`` (appended, so restarts keep earlier output)."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started (pid {self._popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env} if self.env is not None else None
        with open(self.log_path, "ab") as out:
            out.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            out.flush()
            try:
                self._popen = _spawn(lambda: subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(os.getpid()) if self.die_with_parent else None,
                ))
            except OSError as exc:
                raise ProviderError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc
        self._started_at = process_started_at(self._popen.pid)
        log.debug("started %s pid %d: %s", self.name, self._popen.pid, " ".join(self.argv))
        return self

    def alive(self) -> bool:
        """True while it runs. Does not reap it, so its PID (and group ID) stay ours until stop()."""
        if self._popen is None:
            return False
        if self._exit_code is not None:
            return False
        try:
            # WNOWAIT leaves the zombie in place: the PID cannot be reused while we still
            # may signal its process group.
            info = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # already reaped (by stop())
            self._exit_code = self._popen.returncode if self._popen.returncode is not None else -1
            return False
        if info is None:
            return True
        self._exit_code = -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
        return False

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to its whole process group (it and everything it spawned without a new session)."""
        if self._popen is None or self._popen.returncode is not None:
            return  # reaped: the group ID may belong to someone else by now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the group, wait up to ``grace`` s, SIGKILL the group, then reap. Returns the exit code.

        The leader is reaped only after the final SIGKILL, so the group ID cannot have been
        reused when we send it: a zombie leader still owns its PID.
        """
        if self._popen is None or self._popen.returncode is not None:
            return self.exit_code
        if self.alive():
            self.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                log.info("%s (pid %d) ignored SIGTERM for %.0fs; sending SIGKILL", self.name, self.pid, grace)
        # Also reaches children left behind by a leader that exited on SIGTERM.
        self.signal_group(signal.SIGKILL)
        code = self._popen.wait()
        self._exit_code = code if self._exit_code is None else self._exit_code
        log.debug("stopped %s (pid %d), exit code %s", self.name, self.pid, self._exit_code)
        return self._exit_code

    def tail(self, n: int = 30) -> str:
        """The last ``n`` lines of its log, for error messages."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - _TAIL_BYTES))
                data = handle.read()
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-n:])

    def describe_exit(self, lines: int = 30) -> str:
        """A paragraph saying it exited, with what status, and its log tail."""
        return (
            f"{self.name} (pid {self.pid}) exited with status {self.exit_code}. "
            f"Last {lines} lines of {self.log_path}:\n{_indent(self.tail(lines))}"
        )


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    <empty log>"


class _Exited(AssertionError):
    """Raised inside a wait when a watched process exited: AssertionError makes ``eventually`` stop at once."""

    def __init__(self, proc: ManagedProcess) -> None:
        super().__init__(proc.name)
        self.proc = proc


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    what: str,
    processes: Iterable[ManagedProcess] = (),
    condition: Callable[[T], bool | str | None] = bool,
    interval: float = 0.25,
    log_lines: int = 30,
) -> T:
    """Poll ``check`` until ``condition`` holds for what it returns (exceptions mean "not yet"); return it.

    Stops at once with a :class:`ProviderError` if one of ``processes`` exits, showing its
    log tail. On timeout the error names ``what``, the last value seen, and the log tail of
    the last process in ``processes`` (the one being waited for).
    """
    watched = list(processes)

    def observe() -> T:
        for proc in watched:
            if not proc.alive():
                raise _Exited(proc)
        return check()

    started = time.monotonic()
    try:
        return eventually(observe, condition, timeout=timeout, interval=interval, description=what)
    except _Exited as exc:
        raise ProviderError(
            f"{exc.proc.name} exited while waiting for {what} "
            f"(after {time.monotonic() - started:.1f}s).\n{exc.proc.describe_exit(log_lines)}"
        ) from None
    except AssertionError as exc:
        message = str(exc)
        if watched:
            proc = watched[-1]
            message += f"\nLast {log_lines} lines of {proc.name}'s log {proc.log_path}:\n"
            message += _indent(proc.tail(log_lines))
        raise ProviderError(message) from None


class Supervisor:
    """Owns several processes; stops them in reverse start order (clients before the servers they use)."""

    def __init__(self, on_start: Callable[[ManagedProcess], None] | None = None) -> None:
        self._processes: list[ManagedProcess] = []
        self._on_start = on_start

    @property
    def processes(self) -> list[ManagedProcess]:
        """The processes started so far, in start order."""
        return list(self._processes)

    def start(self, proc: ManagedProcess) -> ManagedProcess:
        """Start ``proc`` and take ownership; ``on_start`` (e.g. recording its PID) runs right after."""
        proc.start()
        self._processes.append(proc)
        if self._on_start is not None:
            self._on_start(proc)
        return proc

    def stop_one(self, proc: ManagedProcess, grace: float = 10.0) -> None:
        """Stop one process and forget it (e.g. to restart it with other arguments)."""
        proc.stop(grace)
        self._processes = [p for p in self._processes if p is not proc]

    def exited(self) -> list[ManagedProcess]:
        """Processes that are no longer running."""
        return [proc for proc in self._processes if not proc.alive()]

    def stop(self, grace: float = 10.0) -> None:
        """Stop everything, last started first. Errors stopping one do not keep the others running."""
        errors: list[str] = []
        while self._processes:
            proc = self._processes.pop()
            try:
                proc.stop(grace)
            except Exception as exc:  # keep going: leaving the rest running is worse
                errors.append(f"{proc.name}: {exc}")
                log.exception("stopping %s failed", proc.name)
        if errors:
            raise ProviderError("could not stop every process: " + "; ".join(errors))


# How installers start processes: plain ManagedProcess, or a run-recorded one on the local provider.
ProcessFactory = Callable[[str, Sequence[str], Path, Mapping[str, str] | None], ManagedProcess]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on at ``host`` right now (a race remains; callers retry or fail clearly)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200: the readiness check of operator, Traefik and friends."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def run_tool(argv: Sequence[str], what: str, timeout: float) -> str:
    """Run a CLI (helm, istioctl) to completion; its stdout, or one ProviderError naming ``what`` and why."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"`{what}` did not finish within {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise ProviderError(f"`{what}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout
