"""Pod phase, conditions, container statuses, IP allocation and probe thresholds (pure, no cluster)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_kuberay.providers.local.node_agent.containers import ContainerRuntime, Termination
from pytest_kuberay.providers.local.node_agent.pod_network import IpAllocator, NetworkError, PodNetwork
from pytest_kuberay.providers.local.node_agent.pod_status import (
    ConditionTracker,
    ContainerFacts,
    container_status,
    pod_conditions,
    pod_phase,
)
from pytest_kuberay.providers.local.node_agent.probes import (
    ProbeResult,
    ProbeRunner,
    ProbeTimings,
    check_http,
    check_tcp,
    resolve_port,
)

RUNNING = ContainerFacts(ever_started=True, running=True, exit_code=None)
NEVER = ContainerFacts(ever_started=False, running=False, exit_code=None)
OK = ContainerFacts(ever_started=True, running=False, exit_code=0)
FAILED = ContainerFacts(ever_started=True, running=False, exit_code=1)
UNREAPED = ContainerFacts(ever_started=True, running=False, exit_code=None)  # stopped, exit code not read yet


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        ("Always", [RUNNING, NEVER], "Pending"),
        ("Always", [RUNNING, OK], "Running"),
        ("Always", [OK, FAILED], "Running"),  # all stopped, but Always restarts them
        ("OnFailure", [OK, OK], "Succeeded"),
        ("OnFailure", [OK, FAILED], "Running"),
        ("Never", [OK, OK], "Succeeded"),
        ("Never", [OK, FAILED], "Failed"),
        # seen in CI: an exit-0 pod was marked Failed for good because the phase was computed before
        # its exit code was known
        ("Never", [UNREAPED], "Running"),
        ("Never", [OK, UNREAPED], "Running"),
    ],
)
def test_pod_phase(policy: str, containers: list[ContainerFacts], phase: str) -> None:
    assert pod_phase(policy, init_failed=False, init_done=True, containers=containers) == phase


def test_pod_phase_with_init_containers() -> None:
    assert pod_phase("Always", init_failed=False, init_done=False, containers=[NEVER]) == "Pending"
    assert pod_phase("Never", init_failed=True, init_done=False, containers=[NEVER]) == "Failed"


def test_conditions_keep_their_transition_time_until_they_change(monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = ConditionTracker()
    times = iter(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T00:00:09Z"])
    monkeypatch.setattr("pytest_kuberay.providers.local.node_agent.pod_status.now_rfc3339", lambda: next(times))
    first = tracker.condition("Ready", False, "ContainersNotReady", "containers with unready status: [c]")
    assert first["reason"] == "ContainersNotReady"
    again = tracker.condition("Ready", False, "ContainersNotReady")
    assert again["lastTransitionTime"] == first["lastTransitionTime"]
    ready = tracker.condition("Ready", True, "ignored when true")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:05Z"
    assert "reason" not in ready


def test_pod_conditions_of_a_ready_pod() -> None:
    conditions = pod_conditions(
        ConditionTracker(), phase="Running", sandbox_ready=True, init_done=True, unready=[], uninitialized=[]
    )
    assert {c["type"]: c["status"] for c in conditions} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }


def test_container_status_shows_back_off_and_the_last_termination() -> None:
    runtime = ContainerRuntime({"name": "c", "image": "rayproject/ray:2.46.0"})
    waiting = container_status(runtime, "uid")
    assert waiting["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "containerID" not in waiting
    ended = Termination(1, "Error", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z")
    runtime.ran_once, runtime.terminated, runtime.backoff_until = True, ended, time.monotonic() + 10
    runtime.waiting_reason, runtime.waiting_message = "CrashLoopBackOff", "back-off 1s"
    backing_off = container_status(runtime, "uid")
    assert backing_off["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    runtime.backoff_until, runtime.last_termination = 0.0, ended
    stopped = container_status(runtime, "uid")
    assert stopped["state"]["terminated"]["exitCode"] == 1
    assert stopped["lastState"]["terminated"]["reason"] == "Error"
    assert stopped["ready"] is False


def test_ip_allocator_round_robin_and_exhaustion() -> None:
    allocator = IpAllocator("10.244.3.0/28", "10.244.3.1", first_host=10)
    first = [allocator.allocate() for _ in range(5)]
    assert first == ["10.244.3.10", "10.244.3.11", "10.244.3.12", "10.244.3.13", "10.244.3.14"]
    with pytest.raises(NetworkError, match="no free pod IP"):
        allocator.allocate()
    allocator.release("10.244.3.11")
    assert allocator.allocate() == "10.244.3.11"


def test_pod_network_names_fit_interface_limits() -> None:
    network = PodNetwork("pkr255", "10.244.255.254", 24, "10.244.255.1")
    assert network.netns == "pkr255-p254"
    assert network.host_veth == "pkr255v254"
    assert len(network.host_veth) <= 15 and len(f"{network.bridge}c{network.octet}") <= 15


def test_probe_timings_defaults_and_named_ports() -> None:
    assert ProbeTimings.of({}) == ProbeTimings(0.0, 10.0, 1.0, 1, 3)
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(9000, container) == 9000
    with pytest.raises(ValueError, match="no port named"):
        resolve_port("grpc", container)


def test_probe_runner_flips_only_after_the_thresholds() -> None:
    results = iter([True, False, False, True, True])
    changes: list[bool] = []
    timings = ProbeTimings(initial_delay=0, period=0.01, timeout=1, success_threshold=2, failure_threshold=2)
    runner = ProbeRunner(
        "readiness", timings, lambda _timeout: ProbeResult(next(results, True)), lambda r: changes.append(r.healthy),
        name="ns/p/c",
    )
    assert runner.healthy is False
    for _ in range(3):  # one success (< 2 needed), then two failures: still not ready, no change
        runner._record(runner.check(1.0))
    assert changes == [] and runner.healthy is False
    for _ in range(2):
        runner._record(runner.check(1.0))
    assert changes == [True] and runner.healthy is True
    liveness = ProbeRunner("liveness", timings, lambda _t: ProbeResult(False), lambda r: None, name="x")
    assert liveness.healthy is True
    liveness._record(ProbeResult(False))
    assert liveness.healthy is True
    liveness._record(ProbeResult(False))
    assert liveness.healthy is False


@pytest.fixture
def http_port() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_http_and_tcp_checks(http_port: int) -> None:
    assert check_http("127.0.0.1", http_port, {"path": "/ok"}, 2).ok
    failing = check_http("127.0.0.1", http_port, {"path": "/bad"}, 2)
    assert not failing.ok and failing.message == "HTTP 500"
    assert check_tcp("127.0.0.1", http_port, 2).ok
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert not check_tcp("127.0.0.1", closed, 2).ok
