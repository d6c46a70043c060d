"""Record a RayService for a while without an upgrade: at steady state, or after a change that must be refused.

Some bugs need no upgrade at all to show (the operator rewriting the Gateway on every
reconcile, a panic on a spec it should accept), and some need a change the operator must
reject rather than act on (upgrade options that can never finish). Both are judged on a
recording of the same kind as an upgrade's: status, live Serve state and objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.drive.deploy import DeployedRayService
from pytest_kuberay.drive.upgrade import recorder_for
from pytest_kuberay.observe.apiserver_metrics import write_requests
from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

__all__ = ["GATEWAY_RESOURCES", "Action", "record_for"]


#: What the operator writes besides the RayService's clusters: counted by :func:`record_for`.
GATEWAY_RESOURCES = (("gateway.networking.k8s.io", "gateways"), ("gateway.networking.k8s.io", "httproutes"))


#: A change made while recording: it gets ``mark(name)``, which puts a marker on the timeline at that instant.
Action = Callable[[Callable[[str], None]], None]


def record_for(deployed: DeployedRayService, seconds: float, *, apply: dict[str, Any] | Action | None = None,
               plan: UpgradePlan | None = None, interval: float = 1.0,
               until: Callable[[Sample], bool] | None = None,
               count_writes: Sequence[tuple[str, str]] = GATEWAY_RESOURCES) -> Timeline:
    """Record for ``seconds`` (less if ``until(sample)`` holds), after applying ``apply`` if given.

    ``apply`` is a manifest to apply, or an action (delete a cluster, apply two specs in a race)
    called with ``mark(name)`` to put its own markers on the timeline. The recording starts
    before the change so the state it changes is on record; the change's time is the
    timeline's ``change applied`` marker. The API server's write counts
    of ``count_writes`` are read before and after (``timeline.writes``; absent without
    access to ``/metrics``).
    """
    def writes() -> dict[str, int]:
        counts = {resource: write_requests(deployed.cluster.api_client, group, resource)
                  for group, resource in count_writes}
        return {resource: count for resource, count in counts.items() if count is not None}

    recorder = recorder_for(deployed, interval, plan)
    markers: dict[str, float] = {}
    writes_before = writes()
    with recorder.recording():
        eventually(recorder.latest, lambda s: s is not None, timeout=30, interval=0.1,
                   description="a first sample before the change")
        if apply is not None:
            def mark(name: str) -> None:
                markers[name] = time.monotonic() - recorder.t0

            mark("change applied")
            if callable(apply):
                apply(mark)
            else:
                deployed.apply(apply)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            latest = recorder.latest()
            if until is not None and latest is not None and until(latest):
                break
            time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
    writes_after = writes()
    timeline = recorder.timeline()
    timeline.markers = markers
    timeline.writes = {r: (writes_before[r], writes_after[r]) for r in writes_before if r in writes_after}
    return timeline
