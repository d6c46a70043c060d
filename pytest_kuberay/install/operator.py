"""The KubeRay operator running in a cluster as a Deployment, however it was installed (release manifests or Helm).

Every provider ends up here: wait until the operator's pod is Ready (and, with leader
election, leads), follow its log into a file for the artifacts, and restart it the way
an operator restarts in production: delete its pod and wait for the Deployment's next one,
which starts with an empty in-memory Serve-config cache (upstream issue 4717).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.phases import PHASES
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["InClusterOperator", "PodLogFollower", "api_reason"]

log = logging.getLogger(__name__)


def api_reason(exc: Exception) -> str:
    """An ApiException's one-line message (its body is a Status), anything else as is."""
    body = getattr(exc, "body", None)
    if body:
        with contextlib.suppress(Exception):
            return f"HTTP {getattr(exc, 'status', '?')}: {yaml.safe_load(body)['message']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class PodLogFollower:
    """Streams one pod's container log into a file, so failure artifacts hold the operator's log."""

    def __init__(self, cluster: ClusterHandle, namespace: str, pod: str, path: Path) -> None:
        self.cluster, self.namespace, self.pod, self.path = cluster, namespace, pod, path
        self._response: Any = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"logs-{pod}", daemon=True)

    def start(self) -> PodLogFollower:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        """Follow the container's log; when it restarts (the stream ends), follow the new instance too."""
        streams = 0
        while not self._stopped.is_set():
            try:
                self._response = self.cluster.core.read_namespaced_pod_log(
                    self.pod, self.namespace, follow=True, _preload_content=False)
                with open(self.path, "ab") as out:
                    if streams:
                        out.write(b"# pytest-kuberay: the container restarted; its next instance's log follows\n")
                    streams += 1
                    for chunk in self._response.stream(4096):
                        out.write(chunk)
                        out.flush()
                        if self._stopped.is_set():
                            return
            except Exception as exc:  # the log is evidence, never a reason to fail a test
                if self._stopped.is_set():
                    return
                if getattr(exc, "status", None) in (400, 404):  # the pod is gone, or waits to restart
                    if getattr(exc, "status", None) == 404:
                        return
                else:
                    reason = api_reason(exc)
                    log.warning("cannot follow the log of pod %s/%s: %s", self.namespace, self.pod, reason)
                    with contextlib.suppress(OSError), open(self.path, "a") as out:
                        out.write(f"# pytest-kuberay could not follow the log of pod {self.namespace}/{self.pod}: "
                                  f"{reason}\n")
                    return
            self._stopped.wait(1.0)

    def stop(self) -> None:
        """Stop following. The reading thread owns the connection: closing it from here deadlocks on the
        SSL socket it is blocked reading (seen at teardown), so we shut the socket down, which wakes it."""
        self._stopped.set()
        response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def pod_ready(pod: Any) -> bool:
    conditions = {c.type: c.status for c in ((pod.status and pod.status.conditions) or [])}
    return pod.metadata.deletion_timestamp is None and conditions.get("Ready") == "True"


class InClusterOperator:
    """One operator Deployment at one version: Ready, logged, restartable, and removable if we installed it."""

    restartable = True

    def __init__(self, cluster: ClusterHandle, version: KubeRayVersion, namespace: str, pod_selector: str,
                 log_dir: Path, uninstall: Callable[[], None] | None = None) -> None:
        self.cluster = cluster
        self.version = version
        self.namespace = namespace
        self.pod_selector = pod_selector
        self.log_dir = log_dir
        self.restarts = 0
        self.log_paths: list[Path] = []
        self.ready_seconds: float | None = None
        self._uninstall = uninstall
        self._follower: PodLogFollower | None = None
        self._readiness: threading.Thread | None = None
        self._readiness_error: BaseException | None = None
        self._stopping = threading.Event()

    def _pods(self) -> list[Any]:
        return list(self.cluster.core.list_namespaced_pod(self.namespace, label_selector=self.pod_selector).items)

    def _wait_new_pod(self, old_uids: set[str], timeout: float) -> str:
        def ready_new() -> list[str]:
            if self._stopping.is_set():
                raise ProviderError(f"stopped waiting for the KubeRay operator {self.version.label}: it is being "
                                    "removed")
            return [p.metadata.name for p in self._pods() if p.metadata.uid not in old_uids and pod_ready(p)]

        def show(names: list[str]) -> str:
            pods = self._pods()
            return ", ".join(f"{p.metadata.name} ({p.status.phase}, uid {p.metadata.uid[:8]})" for p in pods) or "none"

        names = wait_for(ready_new, bool, timeout=timeout, interval=0.5,
                         description=f"a new Ready KubeRay operator pod ({self.pod_selector}) in namespace "
                                     f"{self.namespace}", show=show)
        return str(names[0])

    def _leases_held_by(self, pods: set[str]) -> list[str]:
        from kubernetes import client

        held = []
        for lease in client.CoordinationV1Api(self.cluster.api_client).list_namespaced_lease(self.namespace).items:
            holder = str((lease.spec.holder_identity if lease.spec else None) or "")
            if any(holder.startswith(f"{pod}_") for pod in pods):
                held.append(str(lease.metadata.name if lease.metadata else ""))
        return held

    def _wait_leadership(self, old_pods: set[str], new_pod: str, timeout: float) -> None:
        """With leader election on (the chart's default) the new pod is Ready before it leads: wait until it does."""
        held = self._leases_held_by(old_pods)
        if not held:
            return
        wait_for(lambda: self._leases_held_by(old_pods), lambda still: not still, timeout=timeout, interval=1.0,
                 description=f"leader lease(s) {', '.join(held)} taken over from the deleted operator pod",
                 show=lambda still: f"still held by the old pod: {still}")
        log.info("operator pod %s holds the leader lease(s) %s", new_pod, ", ".join(held))

    def _follow(self, pod: str) -> None:
        if self._follower is not None:
            self._follower.stop()
        path = self.log_dir / f"kuberay-operator-{self.version.label}-{self.restarts}.log"
        self.log_paths.append(path)
        self._follower = PodLogFollower(self.cluster, self.namespace, pod, path).start()
        self.cluster.log_files["kuberay-operator"] = path

    def wait_ready(self, timeout: float, started: float | None = None) -> InClusterOperator:
        """Wait for the Deployment's pod to be Ready; follow its log from then on."""
        started = time.monotonic() if started is None else started
        pod = self._wait_new_pod(set(), timeout)
        self.ready_seconds = time.monotonic() - started
        self._follow(pod)
        log.info("KubeRay operator %s Ready in namespace %s (pod %s) after %.1fs", self.version.label,
                 self.namespace, pod, self.ready_seconds)
        PHASES.add(f"operator {self.version.label} Ready", started, time.monotonic())
        return self

    def wait_ready_in_background(self, timeout: float, started: float | None = None) -> InClusterOperator:
        """Start waiting for Ready, and return at once; :meth:`ready` joins the wait.

        Its readiness probe makes the pod Ready 10 s after it starts at the earliest, while the
        operator reconciles from its first second: a RayService applied meanwhile starts its Ray
        cluster in parallel instead of after that delay.
        """
        def wait() -> None:
            try:
                self.wait_ready(timeout, started)
            except BaseException as exc:
                self._readiness_error = exc

        self._readiness = threading.Thread(target=wait, name=f"operator-{self.version.label}-ready", daemon=True)
        self._readiness.start()
        return self

    def ready(self) -> None:
        """Return once the operator is Ready (at once if it was waited for already); raise why it is not."""
        if self._readiness is not None:
            self._readiness.join()
        if self._readiness_error is not None:
            raise self._readiness_error

    def container_restarts(self) -> dict[str, str]:
        """Operator containers the kubelet restarted (pod -> count and why), e.g. after a failed liveness probe.

        Our own restarts delete the pod: its successor starts at zero, so this counts only the others.
        """
        found = {}
        for pod in self._pods():
            for status in (pod.status and pod.status.container_statuses) or []:
                if status.restart_count:
                    last = status.last_state.terminated if status.last_state else None
                    why = f"{last.reason} (exit {last.exit_code})" if last else "unknown reason"
                    found[pod.metadata.name] = f"{status.restart_count} restart(s), last: {why}"
        return found

    def restart(self, timeout: float = 120.0) -> None:
        """Delete the operator pod; wait for the Deployment's next one to be Ready (it starts with an empty cache)."""
        old = {p.metadata.uid: p.metadata.name for p in self._pods()}
        if not old:
            raise ProviderError(f"no KubeRay operator pod ({self.pod_selector}) in namespace {self.namespace} "
                                "to restart")
        for name in old.values():
            self.cluster.core.delete_namespaced_pod(name, self.namespace)
        started = time.monotonic()
        pod = self._wait_new_pod(set(old), timeout)
        self._wait_leadership(set(old.values()), pod, timeout)
        self.restarts += 1
        self._follow(pod)
        log.info("KubeRay operator restarted: pod %s replaced by %s in %.1fs", ", ".join(old.values()), pod,
                 time.monotonic() - started)

    def stop(self) -> None:
        """Stop following its log; uninstall it if we installed it."""
        self._stopping.set()
        if self._readiness is not None:
            self._readiness.join(timeout=5)
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if self._uninstall is not None:
            uninstall, self._uninstall = self._uninstall, None
            uninstall()
