"""The node agent against a real control plane: pods run as real processes, Ray runs for real, nothing is left.

Needs root (network namespaces, veths, mounts), iproute2 and util-linux, and the control
plane's binaries (built by the toolchain, or already cached). Skipped with the reason
otherwise. Figures (Ray head create->Ready time, memory per pod) are printed and recorded
as JUnit properties.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from pytest_kuberay.errors import ToolchainError
from pytest_kuberay.providers.local import toolchain
from pytest_kuberay.providers.local.control_plane import LocalControlPlane, run_control_plane
from pytest_kuberay.providers.local.node_agent.kube import ApiError, KubeClient, KubeCredentials
from pytest_kuberay.providers.local.node_agent.launcher import NodeAgentProcess
from pytest_kuberay.providers.local.node_agent.pod_sandbox import pod_memory, processes_in_pid_namespace
from pytest_kuberay.providers.local.node_agent.state import PodRecord, recorded_pods
from pytest_kuberay.verdict.polling import eventually

pytestmark = pytest.mark.slow

T = TypeVar("T")
JSON = dict[str, Any]

_TOOLS = ("ip", "nsenter", "unshare", "setpriv", "setsid", "wget", "bash")
_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")

RAY_PROBE = (
    "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success && "
    "wget --tries 1 -T 10 -q -O- http://localhost:8265/api/gcs_healthz | grep success"
)


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the node agent needs root (network namespaces, veths, mounts)"
    for tool in _TOOLS:
        if shutil.which(tool) is None:
            return f"the node agent needs `{tool}` on PATH (apt-get install iproute2 util-linux wget)"
    for name in _COMPONENTS:
        cached = toolchain.cache_root() / "bin" / name / toolchain.component_version(name) / name
        if not cached.is_file() and shutil.which("go") is None:
            return f"{name} is not built and there is no `go` to build it (run `make toolchain`)"
    return None


@contextlib.contextmanager
def _cluster() -> Iterator[LocalControlPlane]:
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    manager = run_control_plane()
    try:
        control_plane = manager.__enter__()
    except ToolchainError as exc:
        pytest.skip(f"the control plane's binaries cannot be built: {exc}")
    try:
        yield control_plane
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def control_plane() -> Iterator[LocalControlPlane]:
    with _cluster() as control_plane:
        yield control_plane


@pytest.fixture(scope="module")
def agent(control_plane: LocalControlPlane) -> Iterator[NodeAgentProcess]:
    process = NodeAgentProcess(control_plane).start()
    try:
        yield process
    finally:
        assert process.stop() == 0, process.process.tail(50)


@pytest.fixture(scope="module")
def kube(control_plane: LocalControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeClient]:
    client = KubeClient(KubeCredentials.from_kubeconfig(control_plane.kubeconfig, tmp_path_factory.mktemp("creds")))
    yield client
    client.close()


def _new_namespace(kube: KubeClient) -> str:
    name = f"agent-{secrets.token_hex(3)}"
    kube.post("/api/v1/namespaces", {"metadata": {"name": name}})
    # The ServiceAccount admission plugin rejects pods until the controller manager made "default".
    _wait(lambda: kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), f"ServiceAccount {name}/default")
    return name


@pytest.fixture
def namespace(kube: KubeClient) -> Iterator[str]:
    name = _new_namespace(kube)
    yield name
    with contextlib.suppress(ApiError, httpx.HTTPError):
        kube.delete(f"/api/v1/namespaces/{name}")


def _wait(observe: Callable[[], T], what: str, timeout: float = 60.0, interval: float = 0.5) -> T:
    return eventually(observe, bool, timeout=timeout, interval=interval, description=what)


def _pod(kube: KubeClient, namespace: str, name: str) -> JSON:
    return kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")


def _is_ready(pod: JSON) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _wait_ready(kube: KubeClient, namespace: str, name: str, timeout: float = 60.0) -> JSON:
    return eventually(
        lambda: _pod(kube, namespace, name),
        lambda pod: _is_ready(pod) or f"phase {pod.get('status', {}).get('phase')}",
        timeout=timeout,
        interval=0.25,
        description=f"pod {namespace}/{name} to be Ready",
        show=lambda pod: str(pod.get("status")),
    )


def _record(agent: NodeAgentProcess, namespace: str, name: str) -> PodRecord:
    return _wait(lambda: recorded_pods(agent.agent_dir).get(f"{namespace}/{name}"), f"{namespace}/{name} in the state")


def _in_pod(record: PodRecord, *argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the pod, like ``kubectl exec``."""
    assert record.holder_pid is not None
    enter = ["nsenter", "-t", str(record.holder_pid), "-m", "-n", "-p", "-u", "-i", "--"]
    return subprocess.run([*enter, *argv], capture_output=True, text=True, timeout=timeout, check=False)


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_node_is_registered_ready_with_a_fresh_lease(
    agent: NodeAgentProcess, kube: KubeClient, control_plane: LocalControlPlane
) -> None:
    node = kube.get(f"/api/v1/nodes/{agent.node_name}")
    status = node["status"]
    assert {k: status["allocatable"][k] for k in ("cpu", "memory", "pods")} == {
        "cpu": "64",
        "memory": "256Gi",
        "pods": "110",
    }
    assert {"type": "InternalIP", "address": control_plane.network.gateway_ip} in status["addresses"]
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"]
    assert node["spec"]["podCIDR"] == str(control_plane.network.cidr)
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{agent.node_name}")
    assert lease["spec"]["holderIdentity"] == agent.node_name
    first = lease["spec"]["renewTime"]

    def renewed() -> bool:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{agent.node_name}"
        return bool(kube.get(path)["spec"]["renewTime"] != first)

    _wait(renewed, "the node's Lease to be renewed", timeout=25)


def _web_pod(name: str, config_path: str, scratch_path: str) -> JSON:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "python:3.11",
                    "command": ["python3", "-m", "http.server", "8080"],
                    "env": [
                        {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    ],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": scratch_path},
                        {"name": "config", "mountPath": config_path},
                    ],
                }
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "config", "configMap": {"name": f"{name}-config"}},
            ],
        },
    }


def _sleeper_pod(name: str) -> JSON:
    return {
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {"name": "main", "image": "python:3.11", "command": ["python3", "-c", "import time; time.sleep(1e6)"]}
            ],
        },
    }


def test_plain_pod_runs_with_its_volumes_env_and_service_names(
    agent: NodeAgentProcess, kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    config_path = "/etc/pytest-kuberay-web/config"  # /etc exists: its parent gets a per-pod overlay
    scratch_path = "/pytest-kuberay-scratch"  # no such top-level dir: the pod gets an overlay of /
    assert not Path(config_path).exists() and not Path(scratch_path).exists(), "test paths must not exist on the host"
    kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "web-config"}, "data": {"message.txt": "hello from a configmap"}},
    )
    # A pod that will resolve the Service: it starts first, so its /etc/hosts must be rewritten later.
    kube.post(f"/api/v1/namespaces/{namespace}/pods", _sleeper_pod("client"))
    started = time.monotonic()
    kube.post(f"/api/v1/namespaces/{namespace}/pods", _web_pod("web", config_path, scratch_path))
    pod = _wait_ready(kube, namespace, "web")
    ready_after = time.monotonic() - started

    status = pod["status"]
    assert status["phase"] == "Running"
    network = control_plane.network
    pod_ip = status["podIP"]
    assert ipaddress.IPv4Address(pod_ip) in network.cidr
    assert status["hostIP"] == network.gateway_ip
    assert status["containerStatuses"][0]["ready"] is True
    assert set(status["containerStatuses"][0]["state"]) == {"running"}

    # The host reaches the pod IP.
    assert httpx.get(f"http://{pod_ip}:8080/", timeout=5, trust_env=False).status_code == 200

    # Volumes are mounted inside the pod only.
    record = _record(agent, namespace, "web")
    assert record.ip == pod_ip
    shown = _in_pod(record, "cat", f"{config_path}/message.txt")
    assert shown.stdout == "hello from a configmap", shown.stderr
    assert _in_pod(record, "sh", "-c", f"echo scratch > {scratch_path}/file").returncode == 0
    assert (record.dir / "volumes" / "scratch" / "file").read_text() == "scratch\n"
    assert not Path(config_path).exists() and not Path(scratch_path).exists()
    assert config_path not in Path("/proc/self/mountinfo").read_text()

    # The container got its downward-API env.
    server = next(
        pid for pid in processes_in_pid_namespace(record.holder_pid or 0) if b"http.server" in _cmdline(pid)
    )
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{server}/environ").read_text().split("\0") if "=" in item
    )
    assert environ["MY_POD_IP"] == pod_ip
    assert environ["MY_NAMESPACE"] == namespace
    assert environ["KUBERNETES_SERVICE_HOST"] == network.gateway_ip

    # A headless Service: the client pod resolves it by name from its /etc/hosts (rewritten in place).
    kube.post(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "metadata": {"name": "web"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]},
        },
    )
    client = _record(agent, namespace, "client")
    fqdn = f"web.{namespace}.svc.cluster.local"
    resolved = _wait(
        lambda: _in_pod(client, "getent", "hosts", fqdn).stdout.split()[:1] == [pod_ip], f"{fqdn} -> {pod_ip}"
    )
    assert resolved
    fetch = _in_pod(
        client, "python3", "-c", f"import urllib.request; print(urllib.request.urlopen('http://{fqdn}:8080/').status)"
    )
    assert fetch.stdout.strip() == "200", fetch.stderr

    # Deleting the pod stops its processes and removes its namespace and directory within the grace period.
    pids = processes_in_pid_namespace(record.holder_pid or 0)
    assert pids
    started = time.monotonic()
    kube.delete(f"/api/v1/namespaces/{namespace}/pods/web")

    def gone() -> bool:
        try:
            _pod(kube, namespace, "web")
        except ApiError as exc:
            return exc.status == 404
        return False

    _wait(gone, "pod web to be deleted", timeout=30)
    deleted_after = time.monotonic() - started
    assert not [pid for pid in pids if _alive(pid)]
    assert record.netns not in _netns_names()
    assert record.host_veth not in _links()
    assert not record.dir.exists()
    print(f"\nplain pod: create->Ready {ready_after:.1f}s, delete->gone {deleted_after:.1f}s")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _ray_head_pod(name: str, cluster: str) -> JSON:
    """A head pod shaped like the one KubeRay v1.5 generates (FACTS.md section 4), without the autoscaler."""
    probe = {"exec": {"command": ["bash", "-c", RAY_PROBE]}, "periodSeconds": 5, "timeoutSeconds": 5}
    return {
        "metadata": {
            "name": name,
            "labels": {"ray.io/cluster": cluster, "ray.io/node-type": "head", "ray.io/group": "headgroup"},
        },
        "spec": {
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "ray-head",
                    "image": "rayproject/ray:2.46.0",
                    "command": ["/bin/bash", "-c", "--"],
                    "args": [
                        "ulimit -n 65536; ray start --head --block --dashboard-agent-listen-port=52365 "
                        "--dashboard-host=0.0.0.0 --metrics-export-port=8080 --no-monitor --num-cpus=1"
                    ],
                    "env": [
                        {
                            "name": "RAY_CLUSTER_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}},
                        },
                        {"name": "RAY_CLOUD_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "RAY_PORT", "value": "6379"},
                        {"name": "RAY_ADDRESS", "value": "127.0.0.1:6379"},
                        {"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"},
                        {"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"},
                    ],
                    "ports": [
                        {"name": "gcs-server", "containerPort": 6379},
                        {"name": "dashboard", "containerPort": 8265},
                        {"name": "client", "containerPort": 10001},
                        {"name": "serve", "containerPort": 8000},
                    ],
                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "1", "memory": "2Gi"}},
                    "readinessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 10},
                    "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 120},
                    "volumeMounts": [
                        {"name": "ray-logs", "mountPath": "/tmp/ray"},
                        {"name": "shared-mem", "mountPath": "/dev/shm"},
                    ],
                }
            ],
            "volumes": [
                {"name": "ray-logs", "emptyDir": {}},
                {"name": "shared-mem", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
            ],
        },
    }


def test_ray_head_pod_becomes_ready_and_serves_its_dashboard_through_the_api_server(
    agent: NodeAgentProcess,
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    record_property: Callable[[str, object], None],
) -> None:
    kube.post(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "metadata": {"name": "rc-head-svc"},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"ray.io/cluster": "rc", "ray.io/node-type": "head"},
                "ports": [{"name": "dashboard", "port": 8265}, {"name": "gcs-server", "port": 6379}],
            },
        },
    )
    started = time.monotonic()
    kube.post(f"/api/v1/namespaces/{namespace}/pods", _ray_head_pod("rc-head", "rc"))
    _wait_ready(kube, namespace, "rc-head", timeout=120)
    ready_after = time.monotonic() - started

    from kubernetes import client as k8s

    api_client = control_plane.api_client()
    api_client.configuration.safe_chars_for_path_param = "/"  # keep the proxied path's slashes
    core = k8s.CoreV1Api(api_client)

    def applications() -> Any:
        return core.connect_get_namespaced_service_proxy_with_path_with_http_info(
            "rc-head-svc:dashboard", namespace, "api/serve/applications/"
        )

    data, status_code, _headers = _wait(applications, "the dashboard through the API server's service proxy", 30)
    assert status_code == 200
    assert "applications" in str(data)

    record = _record(agent, namespace, "rc-head")
    memory = pod_memory(record.holder_pid or 0)
    # Ray keeps its session in the pod's private /tmp/ray, a host directory that outlives the processes.
    assert list((record.dir / "volumes" / "ray-logs").glob("session_2*/logs/raylet.out"))
    record_property("ray_head_ready_seconds", round(ready_after, 1))
    record_property("ray_head_rss_mib", memory.rss >> 20)
    record_property("ray_head_pss_mib", memory.pss >> 20)
    print(
        f"\nRay head pod: create->Ready {ready_after:.1f}s (readiness initialDelaySeconds is 10); "
        f"{memory.processes} processes, RSS {memory.rss >> 20} MiB, PSS {memory.pss >> 20} MiB"
    )


def test_agent_sigterm_leaves_nothing_behind() -> None:
    with _cluster() as control_plane:
        agent = NodeAgentProcess(control_plane).start()
        kube = KubeClient(KubeCredentials.from_kubeconfig(control_plane.kubeconfig, agent.agent_dir / "test-creds"))
        try:
            namespace = _new_namespace(kube)
            kube.post(
                f"/api/v1/namespaces/{namespace}/configmaps",
                {"metadata": {"name": "web-config"}, "data": {"message.txt": "bye"}},
            )
            kube.post(f"/api/v1/namespaces/{namespace}/pods", _web_pod("web", "/etc/pytest-kuberay-web/config", "/x"))
            kube.post(f"/api/v1/namespaces/{namespace}/pods", _sleeper_pod("sleeper"))
            for name in ("web", "sleeper"):
                _wait(lambda name=name: _pod(kube, namespace, name)["status"].get("phase") == "Running", name)
            records = list(recorded_pods(agent.agent_dir).values())
            assert len(records) == 2
            pids = [pid for r in records for pid in processes_in_pid_namespace(r.holder_pid or 0)]
            pids += [pid for r in records for pid in r.pids]
        finally:
            kube.close()
            code = agent.process.stop(grace=60)  # SIGTERM, then wait; no reaping by the launcher here
        assert code == 0, agent.process.tail(50)
        assert not [pid for pid in pids if _alive(pid)]
        bridge = control_plane.network.name
        assert not [ns for ns in _netns_names() if ns.startswith(f"{bridge}-p")]
        assert not [link for link in _links() if link.startswith(f"{bridge}v")]
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(agent.agent_dir) not in mounts
        assert not [r for r in records if f"/run/netns/{r.netns}" in mounts]
        assert not list((agent.agent_dir / "pods").iterdir())
        assert recorded_pods(agent.agent_dir) == {}


def _terminated(pod: JSON) -> dict[str, JSON]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return {s["name"]: s["state"]["terminated"] for s in statuses if (s.get("state") or {}).get("terminated")}


def _phase_is(kube: KubeClient, namespace: str, name: str, phase: str, timeout: float = 60.0) -> JSON:
    return eventually(
        lambda: _pod(kube, namespace, name),
        lambda pod: pod.get("status", {}).get("phase") == phase or f"phase {pod.get('status', {}).get('phase')}",
        timeout=timeout,
        interval=0.25,
        description=f"pod {namespace}/{name} to be {phase}",
        show=lambda pod: str(pod.get("status")),
    )


def _job_pod(name: str, policy: str, script: str, init: str | None = None) -> JSON:
    pod: JSON = {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": policy,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", script],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }
            ],
            "volumes": [{"name": "work", "emptyDir": {}}],
        },
    }
    if init:
        pod["spec"]["initContainers"] = [
            {
                "name": "prepare",
                "image": "busybox",
                "command": ["sh", "-c", init],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            }
        ]
    return pod


def test_restart_policy_init_containers_and_liveness(agent: NodeAgentProcess, kube: KubeClient, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    kube.post(pods, _job_pod("never-fails", "Never", "exit 3"))
    kube.post(pods, _job_pod("never-ok", "Never", "cat /work/greeting", init="echo hello > /work/greeting"))
    # Fails on its first run only: /tmp is the pod's, so it survives the container's restart.
    kube.post(pods, _job_pod("on-failure", "OnFailure", "test -f /tmp/ran && exit 0; touch /tmp/ran; exit 1"))
    live = _sleeper_pod("liveness")
    live["spec"]["containers"][0]["livenessProbe"] = {
        "tcpSocket": {"port": 9999},  # nothing listens: fails, the container is killed and restarted
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    kube.post(pods, live)

    _phase_is(kube, namespace, "never-fails", "Failed")
    # the phase was once seen a moment before containerStatuses showed the termination (a CI run):
    # wait for both rather than read one status that may be mid-update
    failed = eventually(lambda: _pod(kube, namespace, "never-fails"), lambda pod: "main" in _terminated(pod),
                        timeout=30, interval=0.25, description="never-fails' container main terminated",
                        show=lambda pod: str(pod.get("status")))
    assert failed["status"]["phase"] == "Failed"
    assert _terminated(failed)["main"]["exitCode"] == 3
    assert _terminated(failed)["main"]["reason"] == "Error"

    succeeded = _phase_is(kube, namespace, "never-ok", "Succeeded")
    assert _terminated(succeeded)["main"]["exitCode"] == 0
    init_status = succeeded["status"]["initContainerStatuses"][0]
    assert init_status["state"]["terminated"]["exitCode"] == 0
    logs = next((agent.agent_dir / "pod-logs").glob(f"{namespace}_never-ok_*/main.log"))
    assert "hello" in logs.read_text()

    retried = _phase_is(kube, namespace, "on-failure", "Succeeded")
    status = retried["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1

    def restarted() -> JSON | None:
        status = _pod(kube, namespace, "liveness")["status"]["containerStatuses"][0]
        return status if status["restartCount"] >= 1 else None

    status = _wait(restarted, "the liveness probe to restart the container", timeout=60)
    assert status["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
    # Completed pods are torn down at once; their API objects stay until deleted.
    for name in ("never-fails", "never-ok", "on-failure"):
        _wait(lambda name=name: f"{namespace}/{name}" not in recorded_pods(agent.agent_dir), f"{name} torn down")


def test_a_crashed_agent_leaves_what_reap_removes() -> None:
    from pytest_kuberay.providers.local.node_agent.state import reap

    with _cluster() as control_plane:
        agent = NodeAgentProcess(control_plane).start()
        kube = KubeClient(KubeCredentials.from_kubeconfig(control_plane.kubeconfig, agent.agent_dir / "test-creds"))
        try:
            namespace = _new_namespace(kube)
            kube.post(f"/api/v1/namespaces/{namespace}/pods", _sleeper_pod("sleeper"))
            _wait(lambda: _pod(kube, namespace, "sleeper")["status"].get("phase") == "Running", "sleeper Running")
            record = recorded_pods(agent.agent_dir)[f"{namespace}/sleeper"]
            pids = processes_in_pid_namespace(record.holder_pid or 0)
        finally:
            kube.close()
            agent.process.signal_group(9)  # a crash: no cleanup by the agent
            agent.process.stop(grace=5)
        # The kernel kills the pod with the agent (parent-death signal on the holder's launcher).
        _wait(lambda: not [pid for pid in pids if _alive(pid)], "the pod's processes to die with the agent", 10)
        assert record.netns in _netns_names()  # a network namespace outlives its processes
        removed = reap(agent.agent_dir)
        assert any(record.netns in item for item in removed), removed
        assert record.netns not in _netns_names()
        assert record.host_veth not in _links()
        assert not record.dir.exists()
