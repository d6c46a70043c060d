"""Kubernetes Events about pods (Scheduled, Started, Killing, Unhealthy, BackOff...), posted in the background.

They are what ``kubectl describe pod`` shows and what the suites collect on failure, so a
pod stuck here explains itself. Posting never blocks a pod worker and never fails it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from datetime import datetime, timezone
from typing import Any

from pytest_kuberay.providers.local.node_agent.kube import KubeClient

__all__ = ["EventRecorder"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class EventRecorder:
    """A queue of events and a thread that posts them."""

    def __init__(self, kube: KubeClient, node_name: str) -> None:
        self.kube = kube
        self.node_name = node_name
        self._queue: queue.Queue[JSON | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def start(self) -> EventRecorder:
        """Start posting."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Post what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def emit(
        self, pod: JSON, reason: str, message: str, *, warning: bool = False, container: str | None = None
    ) -> None:
        """Queue one event about ``pod`` (dropped if the queue is full)."""
        meta = pod.get("metadata", {})
        now = datetime.now(timezone.utc)
        involved: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        level = logging.WARNING if warning else logging.INFO
        log.log(level, "pod %s/%s: %s: %s", meta.get("namespace"), meta.get("name"), reason, message)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(event)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.kube.post(f"/api/v1/namespaces/{event['metadata']['namespace']}/events", event)
            except Exception as exc:  # events are best effort
                log.debug("could not post event %s: %s", event.get("reason"), exc)
