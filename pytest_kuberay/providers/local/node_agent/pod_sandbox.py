"""A pod's sandbox: its directory on the host and the holder process that owns its namespaces.

The holder (see ``holder.py``) is PID 1 of the pod's PID namespace and lives in the pod's
network, mount, UTS and IPC namespaces. Containers join them with
``nsenter -t <holder> -m -n -p -u -i`` (FACTS.md section 8), so all containers of a pod
share one file-system view, one network and one process tree, the way containers in a pod
share a network and volumes. Killing the holder kills every process of the pod and drops
all its mounts; the host's mount table never changes.

The holder is started through ``setpriv --pdeathsig KILL`` from the pod's worker thread and
``unshare --kill-child``: if the agent dies, the kernel kills the pod.

Pod directory layout (``<agent dir>/pods/<namespace>_<name>_<uid[:8]>/``)::

    stash/          mount point of the holder's private tmpfs (never used on the host)
    rootfs/tmp/     the pod's private /tmp
    home/           the pod's private home directory (Ray images: /home/ray)
    volumes/<name>/ emptyDir, configMap, secret, projected and downwardAPI contents
    etc/            hosts, resolv.conf, hostname (bind-mounted over /etc/...)
    holder.json     the holder's mount spec
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_kuberay.providers.local.node_agent.pod_network import PodNetwork

__all__ = [
    "HOLDER_SCRIPT",
    "MountSpec",
    "PodMemory",
    "PodSandbox",
    "SandboxError",
    "pod_memory",
    "processes_in_pid_namespace",
]

log = logging.getLogger(__name__)

HOLDER_SCRIPT = Path(__file__).with_name("holder.py")


class SandboxError(Exception):
    """The pod's namespaces or mounts could not be set up."""


@dataclass(frozen=True)
class MountSpec:
    """One mount inside the pod: a host path (or a tmpfs) at ``target``.

    Mounts with the same ``source_key`` share one source (one tmpfs for a memory volume
    mounted twice).
    """

    target: str
    source_key: str
    source: Path | None = None
    tmpfs_size: str | None = None
    readonly: bool = False
    tmpfs: bool = False

    def to_json(self) -> dict[str, object]:
        """The holder's form."""
        data: dict[str, object] = {"target": self.target, "source_key": self.source_key, "readonly": self.readonly}
        if self.tmpfs:
            data["tmpfs"] = {"size": self.tmpfs_size}
        else:
            data["source"] = str(self.source)
        return data


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in_pid_namespace(holder_pid: int) -> list[int]:
    """Host PIDs of every process in the PID namespace whose init is ``holder_pid`` (holder included)."""
    target = _pid_ns(holder_pid)
    if target is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pid_ns(int(entry)) == target:
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry))
    return found


@dataclass(frozen=True)
class PodMemory:
    """Memory of all processes of one pod, in bytes: RSS counts shared pages in full, PSS shares them out."""

    processes: int
    rss: int
    pss: int


def pod_memory(holder_pid: int) -> PodMemory:
    """Sum RSS and PSS over the pod's processes (PSS needs /proc/<pid>/smaps_rollup, i.e. root)."""
    import psutil

    rss = pss = count = 0
    for pid in processes_in_pid_namespace(holder_pid):
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.Error, OSError):
            continue
        count += 1
        rss += info.rss
        pss += getattr(info, "pss", 0)
    return PodMemory(count, rss, pss)


def _tool(name: str) -> str:
    """Absolute path of a host tool, so the container's PATH does not matter for starting it."""
    return shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") or name


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class PodSandbox:
    """The pod's directories and its holder process."""

    def __init__(self, pod_dir: Path, network: PodNetwork, *, env: Mapping[str, str] | None = None) -> None:
        self.dir = pod_dir
        self.network = network
        self.env = dict(env or {})
        self.holder_pid: int | None = None
        self._launcher: subprocess.Popen[bytes] | None = None

    # --------------------------------------------------------------------------- directories

    @property
    def stash(self) -> Path:
        """Mount point of the holder's private tmpfs."""
        return self.dir / "stash"

    @property
    def tmp_dir(self) -> Path:
        """Host side of the pod's /tmp."""
        return self.dir / "rootfs" / "tmp"

    @property
    def home_dir(self) -> Path:
        """Host side of the pod's private home directory."""
        return self.dir / "home"

    @property
    def etc_dir(self) -> Path:
        """Host side of the pod's hosts, resolv.conf and hostname."""
        return self.dir / "etc"

    @property
    def hosts_file(self) -> Path:
        """Bind-mounted over /etc/hosts: rewrite in place only."""
        return self.etc_dir / "hosts"

    def volume_dir(self, name: str) -> Path:
        """Host directory of volume ``name``."""
        return self.dir / "volumes" / name

    def make_dirs(self) -> None:
        """Create the directory tree (``/tmp`` world-writable and sticky, as it is everywhere)."""
        for path in (self.stash, self.tmp_dir, self.home_dir, self.etc_dir, self.dir / "volumes"):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tmp_dir, 0o1777)

    # -------------------------------------------------------------------------------- holder

    def start(self, mounts: list[MountSpec], hostname: str, timeout: float = 15.0) -> int:
        """Start the holder with ``mounts``; return its host PID once the sandbox is ready."""
        spec = {"stash": str(self.stash), "hostname": hostname, "mounts": [m.to_json() for m in mounts]}
        spec_file = self.dir / "holder.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        argv = [
            _tool("setpriv"), "--pdeathsig", "KILL", "--",
            _tool("nsenter"), f"--net={self.network.netns_path}", "--",
            _tool("unshare"), "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc",
            "--propagation", "private", "--kill-child=SIGKILL", "--",
            sys.executable, "-I", str(HOLDER_SCRIPT), str(spec_file),
        ]  # fmt: skip
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8", **self.env}
        with open(self.dir / "holder.log", "ab") as err:
            self._launcher = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True
            )
        assert self._launcher.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        fd = self._launcher.stdout.fileno()
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            line += chunk
        self._launcher.stdout.close()
        text = line.decode(errors="replace").strip()
        if text != "READY":
            tail = (self.dir / "holder.log").read_text(errors="replace")[-2000:]
            self.kill()
            raise SandboxError(f"pod sandbox did not start: {text or 'no answer'} {tail.strip()}".strip())
        for _ in range(100):
            children = _children(self._launcher.pid)
            if children:
                self.holder_pid = children[0]
                return self.holder_pid
            time.sleep(0.01)
        self.kill()
        raise SandboxError("pod sandbox started but its holder process cannot be found")

    @property
    def launcher_pid(self) -> int | None:
        """PID of the ``unshare`` process (its group is the holder's kill switch)."""
        return self._launcher.pid if self._launcher is not None else None

    def enter_argv(self, workdir: str, *, new_session: bool = True) -> list[str]:
        """The prefix that runs a command inside the pod, in a session of its own, in ``workdir``.

        ``nsenter -p`` forks: its child, in the pod's PID namespace, runs ``setsid`` (a new
        session and process group, so signals reach the container and not nsenter) and
        ``env --chdir`` (``nsenter --wd`` would resolve the path on the host). Probes and hooks
        use ``new_session=False``: a timed-out one is killed with nsenter's process group.
        """
        if self.holder_pid is None:
            raise SandboxError("the pod sandbox is not running")
        session = [_tool("setsid")] if new_session else []
        return [
            _tool("nsenter"), "-t", str(self.holder_pid), "-m", "-n", "-p", "-u", "-i", "--",
            *session, _tool("env"), f"--chdir={workdir}", "--",
        ]  # fmt: skip

    def processes(self) -> list[int]:
        """Host PIDs of the pod's processes (holder included)."""
        return processes_in_pid_namespace(self.holder_pid) if self.holder_pid is not None else []

    def alive(self) -> bool:
        """True while the holder runs."""
        return self._launcher is not None and self._launcher.poll() is None

    def kill(self, timeout: float = 10.0) -> None:
        """Kill every process of the pod (by killing the PID namespace's init) and wait until they are gone."""
        if self._launcher is None:
            return
        # The holder first: its parent (unshare) reaps it and exits. Killing unshare first
        # would orphan the holder to the host's init, which may never reap it.
        if self.holder_pid is not None and self._launcher.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.holder_pid, signal.SIGKILL)
        try:
            self._launcher.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pod sandbox launcher %d did not exit; killing its group", self._launcher.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._launcher.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._launcher.wait(timeout)

    def remove_dirs(self) -> None:
        """Delete the pod directory (after kill(): nothing may still use it)."""
        shutil.rmtree(self.dir, ignore_errors=True)
