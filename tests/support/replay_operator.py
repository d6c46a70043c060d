"""Replays the Serve PUTs KubeRay's incremental upgrade makes, against two real Ray clusters.

TEST-ONLY. This is not KubeRay and is never offered to users as KubeRay: it
lets the foundation's recorder and invariants be proven on real Ray Serve
without Kubernetes. It follows the reconcile rules of docs/kuberay-facts.md §1:

* ``reconcileServeTargetCapacity`` acts only when pending TC == pending traffic;
  the active cluster steps down by maxSurge while active + pending > 100,
  otherwise the pending cluster steps up by maxSurge;
* otherwise traffic moves by stepSize, capped by the pending TC;
* ``applyServeTargetCapacity`` PUTs the cluster's *cached* config with the new
  capacity. ``v1.5.0`` then caches the *spec* config under that cluster (bug
  4189); ``v1.5.1`` does not.

It also acts as the recorder's status source, publishing the RayService status
the way the operator would, one step at a time.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from pytest_kuberay.observe.rayservice_status import ClusterStatus, RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeProbe

BEHAVIOURS = ("v1.5.0", "v1.5.1")


class ReplayOperator:
    def __init__(
        self,
        active: ServeProbe,
        pending: ServeProbe,
        old_config: dict[str, Any],
        new_config: dict[str, Any],
        http_options: dict[str, dict[str, Any]],
        behaviour: str,
        max_surge: int = 20,
        step_size: int = 20,
        hold: float = 1.0,
    ) -> None:
        assert behaviour in BEHAVIOURS, behaviour
        self.active, self.pending = active, pending
        self.old_config, self.spec = old_config, new_config
        self.http_options = http_options  # per cluster: two clusters on one host need two Serve ports
        self.behaviour = behaviour
        self.max_surge, self.step_size, self.hold = max_surge, step_size, hold
        self.cache: dict[str, dict[str, Any]] = {}
        self.puts: list[tuple[str, str, float | None]] = []  # (cluster, version, target_capacity)
        self._status = RayServiceStatus(ClusterStatus(active.cluster, 100, 100), None)
        self._lock = threading.Lock()

    # -- StatusSource -----------------------------------------------------------------------------
    def read(self) -> RayServiceStatus:
        with self._lock:
            return self._status

    def _publish(self, active_tc: int, pending_tc: int, traffic: int, then: Callable[[], None] | None = None) -> None:
        """Publish a step's status, then (status first, so no sample sees a new config under the old step)
        make its PUT, then hold the step long enough to be sampled."""
        pending = ClusterStatus(self.pending.cluster, pending_tc, traffic)
        with self._lock:
            self._status = RayServiceStatus(ClusterStatus(self.active.cluster, active_tc, 100 - traffic),
                                            pending, conditions={"UpgradeInProgress": "True"})
        if then is not None:
            then()
        time.sleep(self.hold)

    # -- what the operator sends --------------------------------------------------------------------
    def _put(self, probe: ServeProbe, config: dict[str, Any], capacity: float | None) -> None:
        body = copy.deepcopy(config)
        body["http_options"] = self.http_options[probe.cluster]
        if capacity is not None:
            body["target_capacity"] = capacity
        probe.put_config(body)
        apps = body["applications"]
        version = apps[0]["deployments"][0]["user_config"]["version"] if apps else "no apps"
        self.puts.append((probe.cluster, version, capacity))

    def deploy_initial(self) -> None:
        """Before the upgrade: the active cluster runs the old config; the pending one has no apps."""
        self._put(self.active, self.old_config, None)
        self.cache[self.active.cluster] = self.old_config
        self._put(self.pending, {"applications": []}, None)

    def _apply_target_capacity(self, probe: ServeProbe, goal: int) -> None:
        cached = self.cache.get(probe.cluster, self.spec)
        self._put(probe, cached, goal)
        if self.behaviour == "v1.5.0":
            self.cache[probe.cluster] = self.spec  # the line PR 4212 removed

    def _step_up_pending(self, goal: int) -> None:
        if self.pending.cluster not in self.cache:
            # updateServeDeployment(pending) runs first in the same reconcile: the spec config without
            # target_capacity, because the pending status TC is still unset in v1.5.x
            self._put(self.pending, self.spec, None)
            self.cache[self.pending.cluster] = self.spec
        self._apply_target_capacity(self.pending, goal)

    def run_upgrade(self) -> list[tuple[int, int, int]]:
        """Drive the upgrade to promotion; return the (active, pending, traffic) sequence published."""
        active_tc, pending_tc, traffic = 100, 0, 0
        sequence = [(active_tc, pending_tc, traffic)]
        self._publish(active_tc, 0, 0)  # the pending cluster exists, its apps not yet deployed
        while not (active_tc == 0 and traffic == 100):
            if pending_tc == traffic:
                if active_tc + pending_tc > 100:
                    active_tc = max(0, active_tc - self.max_surge)
                    self._publish(active_tc, pending_tc, traffic,
                                  lambda g=active_tc: self._apply_target_capacity(self.active, g))
                else:
                    pending_tc = min(100, pending_tc + self.max_surge)
                    self._publish(active_tc, pending_tc, traffic,
                                  lambda g=pending_tc: self._step_up_pending(g))
            else:
                traffic = min(100, traffic + self.step_size, pending_tc)
                self._publish(active_tc, pending_tc, traffic)
            sequence.append((active_tc, pending_tc, traffic))
        # promotion: the pending cluster becomes active
        with self._lock:
            self._status = RayServiceStatus(ClusterStatus(self.pending.cluster, 100, 100), None,
                                            conditions={"UpgradeInProgress": "False"})
        time.sleep(self.hold)
        return sequence
