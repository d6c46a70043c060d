"""The node agent: registers the node, binds pending pods to it, and runs a worker per pod.

Three watches feed it: pods bound to this node (one :class:`PodWorker` each, keyed by UID),
pods bound to no node (bound here with a Binding, so no kube-scheduler is needed), and
Endpoints (each pod's ``/etc/hosts``). :meth:`NodeAgent.run` returns after a stop request
has torn down every pod: processes, mounts, network namespaces, veths and directories.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from pytest_kuberay.providers.local.node_agent.config import AgentConfig
from pytest_kuberay.providers.local.node_agent.context import ApiObjects, NodeContext
from pytest_kuberay.providers.local.node_agent.events import EventRecorder
from pytest_kuberay.providers.local.node_agent.hosts import ServiceDirectory
from pytest_kuberay.providers.local.node_agent.images import RayVersionCheck
from pytest_kuberay.providers.local.node_agent.informer import Informer
from pytest_kuberay.providers.local.node_agent.kube import ApiError, KubeClient, KubeCredentials
from pytest_kuberay.providers.local.node_agent.node import NodeRegistration
from pytest_kuberay.providers.local.node_agent.pod_network import IpAllocator
from pytest_kuberay.providers.local.node_agent.pod_worker import PodWorker
from pytest_kuberay.providers.local.node_agent.state import AgentState, reap

__all__ = ["NodeAgent"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
_TERMINAL = ("Succeeded", "Failed")


class NodeAgent:
    """A kubelet for one node whose containers are processes on this machine."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._informers: list[Informer] = []
        self._ctx: NodeContext | None = None
        self._node: NodeRegistration | None = None

    @property
    def ctx(self) -> NodeContext:
        """The shared context (after start)."""
        assert self._ctx is not None, "the agent is not started"
        return self._ctx

    # --------------------------------------------------------------------------------- start

    def start(self, api_timeout: float = 60.0) -> None:
        """Clean up after a crashed predecessor, register the node, start the watches."""
        config = self.config
        config.agent_dir.mkdir(parents=True, exist_ok=True)
        for item in reap(config.agent_dir, stop_agent=False):
            log.info("removed leftover of a previous agent: %s", item)
        config.pods_dir.mkdir(parents=True, exist_ok=True)
        config.logs_dir.mkdir(parents=True, exist_ok=True)
        state = AgentState(config.agent_dir)
        state.save()
        kube = KubeClient(KubeCredentials.from_kubeconfig(config.kubeconfig, config.agent_dir / "credentials"))
        self._wait_for_api(kube, api_timeout)
        events = EventRecorder(kube, config.node_name).start()
        self._ctx = NodeContext(
            config=config,
            kube=kube,
            objects=ApiObjects(kube),
            events=events,
            services=ServiceDirectory(),
            ips=IpAllocator(config.cidr, config.gateway_ip),
            state=state,
            ray_versions=RayVersionCheck(config.python_env),
        )
        self._node = NodeRegistration(kube, config)
        self._node.register()
        self._node.start()
        endpoints = Informer(kube, "/api/v1/endpoints", self._on_endpoints, name="endpoints").start()
        endpoints.synced.wait(10)  # pods started right away should already resolve existing Services
        self._informers.append(endpoints)
        self._informers.append(
            Informer(
                kube, "/api/v1/pods", self._on_pod, name="pods", fieldSelector=f"spec.nodeName={config.node_name}"
            ).start()
        )
        if config.bind_pods:
            self._informers.append(
                Informer(
                    kube,
                    "/api/v1/pods",
                    self._on_unbound_pod,
                    name="binder",
                    fieldSelector="spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed",
                ).start()
            )
        log.info(
            "node agent for %s ready: bridge %s, pods from %s, API %s:%s",
            config.node_name,
            config.bridge,
            config.cidr,
            config.api_host,
            config.api_port,
        )

    @staticmethod
    def _wait_for_api(kube: KubeClient, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                kube.get("/api/v1/namespaces/default")
                return
            except (ApiError, httpx.HTTPError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API server did not answer within {timeout:.0f}s: {exc}") from exc
                time.sleep(0.5)

    # ------------------------------------------------------------------------------- watches

    def _on_endpoints(self, kind: str, obj: JSON) -> None:
        if self.ctx.services.update(kind, obj):
            with self._lock:
                workers = list(self.workers.values())
            for worker in workers:
                worker.wake()

    def _on_pod(self, kind: str, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._prune()
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.vanished()
                return
            if worker is not None:
                worker.update(pod)
                return
            if self._stopping:
                return
            if pod["metadata"].get("deletionTimestamp"):
                # Never ran here (or ran under a previous agent): nothing to stop, let it go.
                self._finalize_unknown(pod)
                return
            if (pod.get("status") or {}).get("phase") in _TERMINAL:
                return
            worker = PodWorker(self.ctx, pod)
            self.workers[uid] = worker
        worker.start()

    def _prune(self) -> None:
        for uid in [uid for uid, w in self.workers.items() if w.done.is_set()]:
            del self.workers[uid]

    def _finalize_unknown(self, pod: JSON) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        try:
            self.ctx.kube.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body)
        except (ApiError, httpx.HTTPError) as exc:
            log.info("finalizing pod %s/%s: %s", meta["namespace"], meta["name"], exc)

    def _on_unbound_pod(self, kind: str, pod: JSON) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if kind == "DELETED" or meta.get("deletionTimestamp") or spec.get("nodeName"):
            return
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return  # someone else's scheduler
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name},
        }
        try:
            self.ctx.kube.post(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", binding)
        except ApiError as exc:
            if exc.status in (404, 409):
                return  # gone, or bound meanwhile (a kube-scheduler may run too)
            raise
        self.ctx.events.emit(
            pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.config.node_name}"
        )

    # ---------------------------------------------------------------------------------- stop

    def stop(self, timeout: float = 60.0) -> None:
        """Tear down every pod (in parallel) and stop the watches and the heartbeat."""
        with self._lock:
            self._stopping = True
            workers = list(self.workers.values())
        for informer in self._informers:
            informer.stop()
        log.info("stopping: tearing down %d pods", len(workers))
        for worker in workers:
            worker.shutdown()
        deadline = time.monotonic() + timeout
        for worker in workers:
            if not worker.join(max(0.1, deadline - time.monotonic())):
                log.warning("pod %s was not torn down within %.0fs", worker.key, timeout)
        if self._node is not None:
            self._node.stop()
        if self._ctx is not None:
            self._ctx.events.stop()
            self._ctx.kube.close()
        # Whatever a stuck worker left behind is still in the state file: reap it now.
        for item in reap(self.config.agent_dir):
            log.warning("reaped after stop: %s", item)
        log.info("node agent stopped")
