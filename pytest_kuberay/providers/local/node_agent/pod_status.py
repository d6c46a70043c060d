"""The pod status the agent reports: phase, conditions and container statuses, computed the kubelet's way.

Phase (from the kubelet's ``getPhase``): ``Pending`` while init containers run or any
container has never started; ``Running`` while any container runs, or all stopped but
some will restart; otherwise ``Succeeded`` if every container exited 0, else ``Failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kuberay.providers.local.node_agent.containers import ContainerRuntime, now_rfc3339

__all__ = ["ConditionTracker", "ContainerFacts", "container_status", "pod_conditions", "pod_phase"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class ContainerFacts:
    """What the phase depends on, per regular container."""

    ever_started: bool
    running: bool
    exit_code: int | None  # of the current termination, when stopped


def pod_phase(
    restart_policy: str, *, init_failed: bool, init_done: bool, containers: Sequence[ContainerFacts]
) -> str:
    """The pod phase (see the module docstring)."""
    if init_failed:
        return "Failed"
    if not init_done or any(not c.ever_started for c in containers):
        return "Pending"
    if any(c.running for c in containers):
        return "Running"
    if any(c.exit_code is None for c in containers):
        return "Running"  # a container has stopped but is not reaped yet: no terminal phase on a guess
    all_ok = all(c.exit_code == 0 for c in containers)
    if restart_policy == "Always":
        return "Running"
    if all_ok:
        return "Succeeded"
    return "Running" if restart_policy == "OnFailure" else "Failed"


class ConditionTracker:
    """Keeps each condition's lastTransitionTime until its status changes."""

    def __init__(self) -> None:
        self._since: dict[str, tuple[str, str]] = {}

    def condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
        """One pod condition."""
        status = "True" if ok else "False"
        previous = self._since.get(kind)
        if previous is None or previous[0] != status:
            self._since[kind] = (status, now_rfc3339())
        data: JSON = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": self._since[kind][1]}
        if not ok and reason:
            data["reason"] = reason
        if not ok and message:
            data["message"] = message
        return data


def pod_conditions(
    tracker: ConditionTracker,
    *,
    phase: str,
    sandbox_ready: bool,
    init_done: bool,
    unready: Sequence[str],
    uninitialized: Sequence[str],
) -> list[JSON]:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled."""
    terminal = phase in ("Succeeded", "Failed")
    ready = not unready and not terminal and init_done
    if terminal:
        reason, message = "PodCompleted", ""
    elif not init_done:
        reason, message = "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(uninitialized)}]"
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    return [
        tracker.condition("PodReadyToStartContainers", sandbox_ready and not terminal),
        tracker.condition(
            "Initialized",
            init_done,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(uninitialized)}]",
        ),
        tracker.condition("Ready", ready, reason, message),
        tracker.condition("ContainersReady", ready, reason, message),
        tracker.condition("PodScheduled", True),
    ]


def container_status(runtime: ContainerRuntime, pod_uid: str) -> JSON:
    """A ContainerStatus for the API."""
    process = runtime.process
    state: JSON
    if runtime.running and process is not None:
        state = {"running": {"startedAt": process.started_at}}
    elif runtime.terminated is not None and runtime.backoff_until == 0.0:
        state = {"terminated": runtime.terminated.to_json()}
    else:
        waiting: JSON = {"reason": runtime.waiting_reason}
        if runtime.waiting_message:
            waiting["message"] = runtime.waiting_message
        state = {"waiting": waiting}
    status: JSON = {
        "name": runtime.name,
        "image": runtime.spec.get("image", ""),
        "imageID": "",
        "ready": runtime.ready,
        "started": runtime.started,
        "restartCount": runtime.restart_count,
        "state": state,
        "lastState": {"terminated": runtime.last_termination.to_json()} if runtime.last_termination else {},
    }
    if runtime.ran_once:
        status["containerID"] = f"pytest-kuberay://{pod_uid}/{runtime.name}/{runtime.restart_count}"
    return status
