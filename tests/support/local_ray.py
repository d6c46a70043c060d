"""Real single-node Ray clusters on this machine, side by side, for tests and benchmarks.

Each cluster gets its own ports and its own short temp dir (Ray's socket paths
must stay under 107 characters), and is stopped by PID: ``ray stop`` would kill
every Ray on the machine. Ray's worker processes live in their own process
groups, so stragglers are found by their temp dir on the command line.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from pytest_kuberay._support.processes import free_port
from pytest_kuberay._support.waiting import eventually

log = logging.getLogger(__name__)

RAY_BIN = Path(sys.executable).with_name("ray")


@dataclass
class LocalRayCluster:
    """One ``ray start --head --block`` process and everything it spawned."""

    name: str
    index: int  # picks a disjoint worker-port range
    num_cpus: int = 2
    ports: dict[str, int] = field(default_factory=dict)
    temp_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard']}"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['serve']}"

    def start(self) -> None:
        names = ("gcs", "dashboard", "agent_http", "agent_grpc", "client", "metrics", "runtime_env", "serve",
                 "node_manager", "object_manager", "dashboard_grpc")
        self.ports = {n: free_port() for n in names}
        self.ports["client"] = 20000 + self.index  # Ray wants the client server port outside the worker range
        self.temp_dir = Path(tempfile.mkdtemp(prefix=f"pkr{self.index}-", dir="/tmp"))
        worker_lo = 30000 + self.index * 1000
        cmd = [
            str(RAY_BIN), "start", "--head", "--block", "--disable-usage-stats",
            f"--port={self.ports['gcs']}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.ports['dashboard']}",
            f"--dashboard-agent-listen-port={self.ports['agent_http']}",
            f"--dashboard-agent-grpc-port={self.ports['agent_grpc']}",
            f"--ray-client-server-port={self.ports['client']}",
            f"--metrics-export-port={self.ports['metrics']}",
            f"--runtime-env-agent-port={self.ports['runtime_env']}",
            f"--node-manager-port={self.ports['node_manager']}",
            f"--object-manager-port={self.ports['object_manager']}",
            f"--min-worker-port={worker_lo}", f"--max-worker-port={worker_lo + 999}",
            f"--num-cpus={self.num_cpus}", f"--temp-dir={self.temp_dir}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        log_path = self.temp_dir / "ray-start.log"
        with log_path.open("wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        log.info("started Ray head %s (pid %d, dashboard %s)", self.name, self.process.pid, self.dashboard_url)

    def wait_ready(self, timeout: float = 120.0) -> None:
        def serve_api() -> int:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.temp_dir / "ray-start.log").read_text()[-2000:] if self.temp_dir else ""
                raise AssertionError(f"Ray head {self.name} exited with {self.process.returncode}:\n{tail}")
            return httpx.get(self.dashboard_url + "/api/serve/applications/", timeout=5).status_code

        eventually(serve_api, lambda code: code == 200, timeout=timeout, interval=1.0,
                   description=f"Ray head {self.name}'s Serve REST API at {self.dashboard_url}")

    def _stragglers(self) -> list[psutil.Process]:
        marker = str(self.temp_dir)
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in proc.info["cmdline"] or []):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the head's process group, then SIGKILL whatever is left, then remove the temp dir."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.temp_dir is not None:
            deadline = time.monotonic() + grace
            while (left := self._stragglers()) and time.monotonic() < deadline:
                for proc in left:
                    proc.terminate() if time.monotonic() < deadline - grace / 2 else proc.kill()
                psutil.wait_procs(left, timeout=1)
            for proc in self._stragglers():
                proc.kill()
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
