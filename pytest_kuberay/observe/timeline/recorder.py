"""The recorder: samples a RayService's status and every cluster's live Serve state at a fixed rate.

It samples on deadlines, not sleeps after work, so a state that lasts two sampling intervals is always
sampled at least once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from pytest_kuberay.observe.objects import ObjectSnapshot, ObjectSource
from pytest_kuberay.observe.rayservice_status import RayServiceStatus, StatusSource
from pytest_kuberay.observe.serve_probe import ServeProbe, ServeSnapshot
from pytest_kuberay.observe.timeline.samples import Sample
from pytest_kuberay.observe.timeline.steps import OPERATOR_RECONCILE_SECONDS, Timeline
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

__all__ = ["ProbeFactory", "SampleListener", "TimelineRecorder"]

log = logging.getLogger(__name__)

ProbeFactory = Callable[[str], ServeProbe]
SampleListener = Callable[[Sample], None]


class TimelineRecorder:
    """Samples a RayService's status and every cluster's live Serve state at a fixed interval."""

    def __init__(
        self,
        status_source: StatusSource,
        probe_for: ProbeFactory,
        interval: float = 0.5,
        plan: UpgradePlan | None = None,
        listeners: list[SampleListener] | None = None,
        reconcile_seconds: float = OPERATOR_RECONCILE_SECONDS,
        probe_wait: float | None = None,
        objects: ObjectSource | None = None,
    ) -> None:
        """``probe_wait``: how long a sample waits for its probes (default: 90% of the interval).

        A longer wait than the interval trades rate for data on a loaded machine: the sample
        comes late (the next one is re-anchored) instead of holding an error.
        """
        self.reconcile_seconds = reconcile_seconds
        self.probe_wait = probe_wait if probe_wait is not None else interval * 0.9
        self.status_source = status_source
        self.object_source = objects
        self.probe_for = probe_for
        self.interval = interval
        self.plan = plan
        self.listeners = list(listeners or [])
        self._samples: list[Sample] = []
        self._probes: dict[str, ServeProbe] = {}
        self._ray_versions: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="serve-probe")
        self._t0 = 0.0
        self._lock = threading.Lock()

    # -- sampling -------------------------------------------------------------------------------
    def _probe(self, cluster: str) -> ServeProbe:
        if cluster not in self._probes:
            self._probes[cluster] = self.probe_for(cluster)
        return self._probes[cluster]

    def _snapshot(self, cluster: str) -> ServeSnapshot:
        """A probe's snapshot; even a probe that raises yields a snapshot, so the recorder never dies."""
        try:
            probe = self._probe(cluster)
            snapshot = probe.snapshot()
        except Exception as exc:
            return ServeSnapshot(cluster, time.monotonic(), error=f"{type(exc).__name__}: {exc}")
        if snapshot.ok and cluster not in self._ray_versions:  # once per cluster: it does not change
            try:
                version = probe.ray_version()
            except Exception:
                log.debug("reading the Ray version of %s failed", cluster, exc_info=True)
                version = None
            if version:
                with self._lock:
                    self._ray_versions[cluster] = version
        return snapshot

    def _unchanged(self, before: RayServiceStatus | None) -> bool:
        """Read the status again: did it move while we probed?"""
        if before is None:
            return True
        try:
            after = self.status_source.read()
        except Exception:
            return False
        return after.step_key == before.step_key and after.clusters() == before.clusters()

    def sample_once(self) -> Sample:
        """Take one sample now: status first (it defines the step), then all clusters in parallel."""
        t = time.monotonic() - self._t0
        status: RayServiceStatus | None = None
        status_error = None
        try:
            status = self.status_source.read()
        except Exception as exc:  # a status read failure is data, not a crash
            status_error = f"{type(exc).__name__}: {exc}"
        clusters = status.clusters() if status else []
        futures = {c: self._pool.submit(self._snapshot, c) for c in clusters}
        objects_future = self._pool.submit(self.object_source.read) if self.object_source else None
        pending: list[Future[Any]] = [*futures.values(), *([objects_future] if objects_future else [])]
        wait(pending, timeout=max(self.probe_wait, 0.05))
        snapshots = {
            cluster: fut.result() if fut.done() else
            ServeSnapshot(cluster, time.monotonic(), error=f"probe slower than {self.probe_wait:.2f}s")
            for cluster, fut in futures.items()
        }
        objects = None
        if objects_future is not None:
            objects = (objects_future.result() if objects_future.done()
                       else ObjectSnapshot(error=f"object read slower than {self.probe_wait:.2f}s"))
        sample = Sample(t, status, snapshots, status_error, settled=self._unchanged(status), objects=objects)
        with self._lock:
            self._samples.append(sample)
        for listener in self.listeners:
            try:
                listener(sample)
            except Exception:
                log.exception("timeline listener failed")
        return sample

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            deadline += self.interval
            now = time.monotonic()
            if deadline < now:  # we fell behind; sample again at once and re-anchor
                log.debug("sampling fell behind by %.3fs", now - deadline)
                deadline = now
            self._stop.wait(deadline - now)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="timeline-recorder", daemon=True)
        self._thread.start()

    def stop(self) -> Timeline:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for probe in self._probes.values():
            probe.close()
        return self.timeline()

    def timeline(self) -> Timeline:
        """The samples so far, as a Timeline (safe to call while recording)."""
        with self._lock:
            timeline = Timeline(list(self._samples), self.plan, self.interval, self.reconcile_seconds)
            timeline.ray_versions = dict(self._ray_versions)
            return timeline

    @property
    def t0(self) -> float:
        """The ``time.monotonic()`` at which recording began; sample times count from here."""
        return self._t0

    def latest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    @contextmanager
    def recording(self) -> Iterator[TimelineRecorder]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
