"""Run an incremental upgrade and record it: every cluster's live Serve config, at every step, to promotion.

The probe reaches each Ray cluster's dashboard through the API server's
service proxy (``<cluster>-head-svc:dashboard``), the same path the operator
uses with ``--use-kubernetes-proxy``, so no port-forward is needed on any
provider.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_kuberay._support.phases import PHASES
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.drive.deploy import DeployedRayService, describe_status, serving
from pytest_kuberay.drive.traffic import ECHO_TRAFFIC, TrafficSender, TrafficSpec
from pytest_kuberay.observe.objects import KubernetesObjectSource
from pytest_kuberay.observe.rayservice_status import KubernetesStatusSource, RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeProbe
from pytest_kuberay.observe.timeline import Sample, SampleListener, Timeline, TimelineRecorder
from pytest_kuberay.workloads.upgrade_plan import UpgradePlan

__all__ = ["VERDICT_REACHED", "TriggerOnce", "gateway_url", "promoted_for", "promoted_or_stalled", "record_upgrade",
           "recorder_for", "serve_probe_factory", "traffic_split"]

log = logging.getLogger(__name__)

#: The timeline's marker of a recording that ended once its tests had their verdict, before the upgrade's end.
VERDICT_REACHED = "verdict reached"


def gateway_url(stack: Any, deployed: DeployedRayService) -> str | None:
    """Where requests reach this RayService's Gateway: per Gateway on kind with Istio, else one per cluster."""
    url_for = getattr(stack, "gateway_url_for", None)
    if url_for is not None:
        return str(url_for(deployed.namespace, f"{deployed.name}-gateway"))
    return getattr(stack, "gateway_url", None)


def serve_probe_factory(deployed: DeployedRayService, timeout: float = 2.0) -> Callable[[str], ServeProbe]:
    return lambda cluster_name: deployed.serve_probe(cluster_name, timeout=timeout)


def recorder_for(deployed: DeployedRayService, interval: float, plan: UpgradePlan | None,
                 listeners: Sequence[SampleListener] = ()) -> TimelineRecorder:
    """A recorder of the RayService's status, every cluster's live Serve state and the objects around it."""
    probe_timeout = max(interval, 1.0)
    return TimelineRecorder(KubernetesStatusSource(deployed.cluster.custom, deployed.namespace, deployed.name),
                            serve_probe_factory(deployed, timeout=probe_timeout), interval=interval, plan=plan,
                            listeners=list(listeners), probe_wait=probe_timeout,
                            objects=KubernetesObjectSource(deployed.cluster, deployed.namespace, deployed.name))


class TriggerOnce:
    """A recorder listener that runs ``action`` once, in its own thread, on the first sample matching ``when``.

    Used to act mid-upgrade (restart the operator, roll the spec back) at a
    chosen step while the recorder keeps sampling.
    """

    def __init__(self, name: str, when: Callable[[Sample], bool], action: Callable[[], None]) -> None:
        self.name = name
        self.when = when
        self.action = action
        self.fired_at: float | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, sample: Sample) -> None:
        if self.fired_at is not None or not self.when(sample):
            return
        self.fired_at = sample.t
        log.info("trigger %s fired at t=%.1fs, step %s", self.name, sample.t, sample.key)
        self._thread = threading.Thread(target=self._run, name=f"trigger-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.action()
        except BaseException as exc:
            self.error = exc
            log.exception("trigger %s failed", self.name)
        finally:
            self.done.set()

    def check(self) -> None:
        """Fail loudly if the trigger never fired or its action failed; a silent no-op would prove nothing."""
        if self.fired_at is None:
            raise AssertionError(f"trigger {self.name!r} never fired: its step was not observed")
        self.done.wait(timeout=120)
        if self.error is not None:
            raise AssertionError(f"trigger {self.name!r} failed: {self.error}") from self.error


def traffic_split(seen: list[str] | None = None) -> Callable[[Sample], bool]:
    """A ``TriggerOnce`` condition: the pending cluster has traffic. ``seen`` gets that cluster's name.

    The moment to disrupt an upgrade in: both clusters serve, the route splits the requests.
    """
    def when(sample: Sample) -> bool:
        if sample.key is None or sample.pending_cluster is None or sample.key[2] <= 0:
            return False
        if seen is not None:
            seen.append(sample.pending_cluster)
        return True

    return when


def _promoted_from(initial_active: str) -> Callable[[RayServiceStatus], str]:
    def check(status: RayServiceStatus) -> str:
        if status.active is None or status.active.cluster == initial_active:
            return f"the active cluster is still {initial_active}"
        if status.pending is not None:
            return "a pending cluster is still present"
        return serving(status)

    return check


def promoted_or_stalled(stall_seconds: float) -> Callable[[str], Callable[[RayServiceStatus], str]]:
    """End an upgrade's recording at promotion, or once it has not stepped for ``stall_seconds``.

    A stuck upgrade would otherwise be recorded until the upgrade timeout; stopping early
    leaves the judging to an invariant (``upgrade_progresses``) that says where it stuck.
    The clock starts when the pending cluster's apps are all RUNNING.
    """
    def until(initial_active: str) -> Callable[[RayServiceStatus], str]:
        promoted = _promoted_from(initial_active)
        seen: dict[str, Any] = {"key": None, "since": None}

        def check(status: RayServiceStatus) -> str:
            reason = promoted(status)
            if not reason:
                return ""
            apps = status.pending.app_statuses if status.pending else {}
            if not apps or any(s != "RUNNING" for s in apps.values()):
                return reason
            now = time.monotonic()
            if status.step_key != seen["key"] or seen["since"] is None:
                seen.update(key=status.step_key, since=now)
            if now - seen["since"] > stall_seconds:
                return ""
            return f"{reason} (at step {status.step_key} for {now - seen['since']:.0f}s)"

        return check

    return until


def promoted_for(seconds: float) -> Callable[[str], Callable[[RayServiceStatus], str]]:
    """End an upgrade's recording ``seconds`` after promotion (serving from the new cluster), not at it.

    What happens right after promotion (the old cluster deleted, the stable Services switched,
    the promoted cluster's capacity) is judged only if the recording goes on a while.
    """
    def until(initial_active: str) -> Callable[[RayServiceStatus], str]:
        promoted = _promoted_from(initial_active)
        since: list[float] = []

        def check(status: RayServiceStatus) -> str:
            reason = promoted(status)
            if status.active is None or status.active.cluster == initial_active or status.pending is not None:
                since.clear()
                return reason
            if not since:
                since.append(time.monotonic())
            waited = time.monotonic() - since[0]
            if waited < seconds:
                return f"promoted {waited:.0f}s ago, recording {seconds:.0f}s after promotion"
            return reason

        return check

    return until


def _so_far(recorder: TimelineRecorder, applied_at: float, triggers: Sequence[TriggerOnce]) -> Timeline:
    """The recording so far, with the markers a signature may name (the upgrade, the triggers fired)."""
    timeline = recorder.timeline()
    timeline.markers = {"upgrade applied": applied_at,
                        **{t.name: t.fired_at for t in triggers if t.fired_at is not None}}
    return timeline


def record_upgrade(
    deployed: DeployedRayService,
    new_manifest: dict[str, Any],
    plan: UpgradePlan,
    timeout: float,
    interval: float = 0.5,
    listeners: Sequence[SampleListener] = (),
    settle: float = 3.0,
    traffic_url: str | None = None,
    traffic: Sequence[TrafficSpec] = (ECHO_TRAFFIC,),
    triggers: Sequence[TriggerOnce] = (),
    until: Callable[[str], Callable[[RayServiceStatus], str]] | None = None,
    until_description: str = "promotion of a new cluster",
    decided: Callable[[Timeline], bool] | None = None,
) -> Timeline:
    """Apply ``new_manifest`` and record until the pending cluster is promoted and serving.

    The recorder starts before the change, so the active cluster's config at
    the start (the baseline) is on record; it keeps going ``settle`` seconds
    after promotion so the final state is sampled too. With ``traffic_url``,
    requests go through the Gateway the whole time and land in ``timeline.requests``.
    ``triggers`` act at chosen steps; ``until(initial_active)`` gives the end condition (default: promotion).
    ``decided(timeline_so_far)`` ends the recording early once it is True: every test judging this
    recording has its verdict (the marker ``verdict reached`` says when).
    """
    recorder = recorder_for(deployed, interval, plan, [*listeners, *triggers])
    initial = deployed.status()
    if initial.active is None:
        raise AssertionError(f"no active cluster to upgrade from: {describe_status(initial)}")
    active = initial.active.cluster
    sender = TrafficSender(traffic_url, traffic) if traffic_url and traffic else None
    requests = []
    verdict_at: list[float] = []
    with recorder.recording():
        if sender is not None:
            sender.start(recorder.t0)
        try:
            eventually(recorder.latest, lambda s: bool(s and active in s.snapshots and s.snapshots[active].apps),
                       timeout=60, interval=0.5, description="a first snapshot of the active cluster's Serve apps",
                       show=lambda s: repr(s and s.snapshots))
            log.info("upgrading %s/%s from cluster %s", deployed.namespace, deployed.name, active)
            applied = time.monotonic()
            applied_at = applied - recorder.t0
            deployed.apply(new_manifest)
            ended = (until or _promoted_from)(active)

            def done(status: RayServiceStatus) -> str:
                reason = ended(status)
                if reason and decided is not None and decided(_so_far(recorder, applied_at, triggers)):
                    verdict_at.append(time.monotonic() - recorder.t0)
                    return ""
                return reason

            eventually(deployed.status, done, timeout=timeout, interval=1.0,
                       description=f"{until_description} for RayService {deployed.namespace}/{deployed.name}",
                       show=describe_status)
            what = "verdict reached before the end" if verdict_at else until_description
            PHASES.add(f"upgrade of {deployed.namespace}/{deployed.name} ({what})", applied, time.monotonic())
            if not verdict_at:
                time.sleep(settle)
        finally:
            if sender is not None:
                requests = sender.stop()
    timeline = _so_far(recorder, applied_at, triggers)
    timeline.requests = requests
    if verdict_at:
        timeline.markers[VERDICT_REACHED] = verdict_at[0]
    for trigger in triggers:
        trigger.check()
    return timeline
