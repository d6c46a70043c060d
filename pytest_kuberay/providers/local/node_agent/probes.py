"""Readiness, liveness and startup probes with the pod's own timings.

``exec`` probes run inside the pod's namespaces (nsenter) with the container's environment;
``httpGet`` and ``tcpSocket`` probes connect from the host to the pod IP, which is what
the kubelet does from the node. Each probe of a running container has a thread of its own:
one slow probe (KubeRay's readiness probe runs two ``wget``s) never delays another pod.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ProbeResult", "ProbeRunner", "ProbeTimings", "check_exec", "check_http", "check_tcp", "resolve_port"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass(frozen=True)
class ProbeResult:
    """One probe attempt."""

    ok: bool
    message: str = ""


@dataclass(frozen=True)
class ProbeTimings:
    """A probe's timing fields with the Kubernetes defaults."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: JSON) -> ProbeTimings:
        """Read them from a probe spec."""
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds", 0) or 0),
            period=float(probe.get("periodSeconds", 10) or 10),
            timeout=float(probe.get("timeoutSeconds", 1) or 1),
            success_threshold=int(probe.get("successThreshold", 1) or 1),
            failure_threshold=int(probe.get("failureThreshold", 3) or 3),
        )


def resolve_port(port: int | str, container: JSON) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for item in container.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"container {container.get('name')!r} has no port named {port!r}")


def check_exec(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> ProbeResult:
    """Run ``argv`` (already prefixed to enter the pod); success is exit status 0."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,  # one group: nsenter, its child in the pod, and whatever that runs
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return ProbeResult(False, f"command timed out after {timeout:g}s")
    text = out.decode(errors="replace").strip()[-500:]
    return ProbeResult(proc.returncode == 0, text if proc.returncode == 0 else f"exit {proc.returncode}: {text}")


def check_http(host: str, port: int, action: JSON, timeout: float) -> ProbeResult:
    """An httpGet probe: any status from 200 to 399 is success."""
    scheme = str(action.get("scheme", "HTTP")).upper()
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": "kube-probe/pytest-kuberay", "Accept": "*/*"}
    for header in action.get("httpHeaders") or []:
        headers[header["name"]] = header["value"]
    try:
        path = action.get("path") or "/"
        conn.request("GET", path if path.startswith("/") else f"/{path}", headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"GET {host}:{port}: {exc}")
    finally:
        conn.close()
    return ProbeResult(200 <= status < 400, f"HTTP {status}")


def check_tcp(host: str, port: int, timeout: float) -> ProbeResult:
    """A tcpSocket probe: success when a connection opens."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True)
    except OSError as exc:
        return ProbeResult(False, f"dial {host}:{port}: {exc}")


class ProbeRunner:
    """Runs one probe of one container run periodically and keeps its verdict.

    ``healthy`` starts False for readiness and startup probes and True for liveness probes,
    and flips only after ``successThreshold`` successes / ``failureThreshold`` failures in a row.
    """

    def __init__(
        self,
        kind: str,
        timings: ProbeTimings,
        check: Callable[[float], ProbeResult],
        on_change: Callable[[ProbeRunner], None],
        *,
        name: str,
    ) -> None:
        self.kind = kind
        self.timings = timings
        self.check = check
        self.on_change = on_change
        self.healthy = kind == "liveness"
        self.last: ProbeResult | None = None
        self.name = name
        self._successes = 0
        self._failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{kind}-{name}", daemon=True)

    def start(self) -> ProbeRunner:
        """Begin probing after the initial delay."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop probing (the current attempt finishes on its own)."""
        self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(self.timings.initial_delay):
            return
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                result = self.check(self.timings.timeout)
            except Exception as exc:  # a probe that cannot even run counts as failed
                result = ProbeResult(False, f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                return
            self._record(result)
            self._stop.wait(max(0.0, self.timings.period - (time.monotonic() - started)))

    def _record(self, result: ProbeResult) -> None:
        self.last = result
        before = self.healthy
        if result.ok:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.timings.success_threshold:
                self.healthy = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.timings.failure_threshold:
                self.healthy = False
            log.debug("%s probe of %s failed: %s", self.kind, self.name, result.message)
        if self.healthy != before:
            self.on_change(self)
