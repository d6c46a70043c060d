"""The local provider's real node: kubelet, containerd and runc run real images, with cgroups, DNS and Services.

One node for the module (its start costs ~15 s); each test gets a namespace. Pods use the
Ray image the node builds (Debian + Python + wget), so no registry is involved.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_kuberay._support import toolchain
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.providers.local import network
from pytest_kuberay.providers.local.host_tools import LOCAL_PROVIDER_COMMANDS
from pytest_kuberay.providers.namespaces import create_namespace, delete_namespace

IMAGE = "rayproject/ray:2.46.0"


def _missing() -> str | None:
    import shutil

    if os.geteuid() != 0:
        return "needs root: the node uses network namespaces, mounts and cgroups"
    absent = [c for c in (*LOCAL_PROVIDER_COMMANDS, "go") if shutil.which(c) is None]
    if absent:
        return f"needs {', '.join(absent)} on PATH (make setup installs them)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


class Node:
    """What the tests need of a running local cluster with its node."""

    def __init__(self, cluster: Any, node: Any) -> None:
        self.cluster = cluster
        self.node = node
        self.handle = cluster.handle
        self.core = cluster.handle.core


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    from pytest_kuberay.providers.local.cluster import local_cluster
    from pytest_kuberay.providers.local.images import ensure_image, pause_image
    from pytest_kuberay.providers.local.node.image_seed import ensure_seed
    from pytest_kuberay.providers.local.node.node import LocalNode

    # As a session's node starts: from the cached containerd root with the images already unpacked.
    seed = ensure_seed([pause_image(), ensure_image(IMAGE)], toolchain.ensure_component("containerd"),
                       toolchain.ensure_component("ctr"))
    with local_cluster(keep_logs_in=tmp_path_factory.mktemp("node-logs")) as cluster:
        local_node = LocalNode(cluster.control_plane, cluster.handle, cluster.run, cluster.process, seed=seed)
        try:
            local_node.start()
            local_node.provide_image(IMAGE)
            yield Node(cluster, local_node)
        finally:
            local_node.stop()


@pytest.fixture
def namespace(node: Node, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"node-{request.node.name.removeprefix('test_').replace('_', '-')}"[:50]
    create_namespace(node.handle, name)
    yield name
    delete_namespace(node.handle, name, timeout=120)


def _pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": IMAGE, "command": command, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1, **spec}}


def _wait_phase(node: Node, ns: str, name: str, phases: set[str], timeout: float = 120) -> Any:
    return eventually(lambda: node.core.read_namespaced_pod(name, ns), lambda p: p.status.phase in phases,
                      timeout=timeout, interval=0.5, description=f"pod {ns}/{name} in {sorted(phases)}",
                      show=lambda p: f"phase {p.status.phase}, {p.status.container_statuses}")


def _wait_ready(node: Node, ns: str, name: str, timeout: float = 120) -> Any:
    def ready(pod: Any) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    return eventually(lambda: node.core.read_namespaced_pod(name, ns), ready, timeout=timeout, interval=0.5,
                      description=f"pod {ns}/{name} Ready", show=lambda p: repr(p.status.conditions))


def _exec(node: Node, ns: str, name: str, command: list[str]) -> str:
    """Like ``kubectl exec``: through the API server to the kubelet's TLS endpoint and containerd."""
    from kubernetes.stream import stream

    return str(stream(node.core.connect_get_namespaced_pod_exec, name, ns, command=command, stderr=True,
                      stdin=False, stdout=True, tty=False))


def test_node_is_ready_with_the_real_kubelet_and_containerd(node: Node) -> None:
    info = node.core.read_node("pytest-kuberay-node").status.node_info
    assert info.kubelet_version == toolchain.component_version("kubelet")
    assert info.container_runtime_version == f"containerd://{toolchain.component_version('containerd').lstrip('v')}"
    addresses = {a.type: a.address for a in node.core.read_node("pytest-kuberay-node").status.addresses}
    assert addresses["InternalIP"] == node.node.network.node_ip


def test_the_node_starts_with_its_images_unpacked_from_the_seed(node: Node) -> None:
    containerd = node.node.containerd
    assert node.node.seeded, "the node imported its images instead of starting from the seed"
    for image in (IMAGE, "pause"):
        assert any(image.split("/")[-1] in name for name in containerd.images()), containerd.images()
    # Pods of the other tests run this image: the seeded layers are what overlay mounts below them.


def test_a_pod_with_limits_gets_its_cgroup(node: Node, namespace: str) -> None:
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "300Mi"}}
    node.core.create_namespaced_pod(namespace, _pod("limited", ["sleep", "600"], container={"resources": resources}))
    pod = _wait_phase(node, namespace, "limited", {"Running"})
    uid = pod.metadata.uid
    memory_root = Path("/sys/fs/cgroup/memory", node.node.cgroups.path.lstrip("/"))
    found = list(memory_root.glob(f"kubepods/*/pod{uid}"))
    assert found, f"no memory cgroup for pod {uid} under {node.node.cgroups.path}/kubepods"
    assert int((found[0] / "memory.limit_in_bytes").read_text()) == 300 * 1024 * 1024
    cpu = Path("/sys/fs/cgroup/cpu", node.node.cgroups.path.lstrip("/"), found[0].relative_to(memory_root))
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000  # 500m of a 100 ms period
    # and the container itself sees its limit
    assert _exec(node, namespace, "limited", ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).strip() == str(
        300 * 1024 * 1024)


def test_service_names_resolve_and_cluster_ips_route(node: Node, namespace: str) -> None:
    server = _pod("web", ["python3", "-m", "http.server", "8080", "--directory", "/etc"],
                  container={"ports": [{"containerPort": 8080}]})
    node.core.create_namespaced_pod(namespace, server)
    for name, cluster_ip in (("web", None), ("web-headless", "None")):
        spec: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        if cluster_ip:
            spec["clusterIP"] = cluster_ip
        node.core.create_namespaced_service(namespace, {"apiVersion": "v1", "kind": "Service",
                                                        "metadata": {"name": name}, "spec": spec})
    web = _wait_phase(node, namespace, "web", {"Running"})
    # A client pod fetches through the ClusterIP (kube-proxy) by the Service's DNS name (CoreDNS).
    url = f"http://web.{namespace}.svc.cluster.local/hostname"
    node.core.create_namespaced_pod(namespace, _pod("client", [
        "sh", "-c", f"for i in $(seq 30); do wget -qO- {url} && exit 0; sleep 1; done; exit 1"],
        restartPolicy="Never"))
    _wait_phase(node, namespace, "client", {"Succeeded"}, timeout=90)
    logs = node.core.read_namespaced_pod_log("client", namespace)
    assert logs.strip() == "web", f"the client read {logs!r} through the Service"
    # The headless Service resolves to the pod IP itself (as KubeRay's head Service does).
    resolved = _exec(node, namespace, "web", ["python3", "-c",
                                              f"import socket; print(socket.gethostbyname('web-headless.{namespace}"
                                              ".svc.cluster.local'))"])
    assert resolved.strip() == web.status.pod_ip
    service_ip = node.core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert service_ip.startswith("10.96.")


def test_exec_and_http_probes_drive_readiness(node: Node, namespace: str) -> None:
    probes = {
        "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 2, "failureThreshold": 30},
    }
    node.core.create_namespaced_pod(namespace, _pod("probed", ["python3", "-m", "http.server", "8080",
                                                               "--directory", "/tmp"], container=probes))
    _wait_phase(node, namespace, "probed", {"Running"})
    pod = node.core.read_namespaced_pod("probed", namespace)
    assert not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    _exec(node, namespace, "probed", ["touch", "/tmp/ready"])
    _wait_ready(node, namespace, "probed", timeout=30)
    assert node.core.read_namespaced_pod("probed", namespace).status.container_statuses[0].restart_count == 0


def test_a_crashed_container_restarts(node: Node, namespace: str) -> None:
    node.core.create_namespaced_pod(namespace, _pod("crasher", ["sh", "-c", "sleep 1; exit 3"]))

    def restarted(pod: Any) -> bool:
        statuses = pod.status.container_statuses or []
        return bool(statuses) and statuses[0].restart_count >= 1

    pod = eventually(lambda: node.core.read_namespaced_pod("crasher", namespace), restarted, timeout=90,
                     interval=0.5, description="the crashed container to be restarted",
                     show=lambda p: repr(p.status.container_statuses))
    last = pod.status.container_statuses[0].last_state.terminated
    assert last is not None and last.exit_code == 3


def test_a_ray_worker_joins_its_head_by_the_service_name(node: Node, namespace: str) -> None:
    """As KubeRay configures it: ``ray start --address=<head svc>.<ns>.svc.cluster.local:6379``."""
    head = _pod("head", ["ray", "start", "--head", "--block", "--num-cpus=1", "--dashboard-host=0.0.0.0",
                         "--include-dashboard=false"],
                container={"env": [{"name": "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "value": "0"}]})
    node.core.create_namespaced_pod(namespace, head)
    node.core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "head-svc"},
        "spec": {"clusterIP": "None", "selector": {"app": "head"}, "ports": [{"name": "gcs", "port": 6379}]}})
    address = f"head-svc.{namespace}.svc.cluster.local:6379"
    worker = _pod("worker", ["sh", "-c", f"until ray health-check --address={address}; do sleep 1; done; "
                                         f"exec ray start --address={address} --block --num-cpus=1"])
    node.core.create_namespaced_pod(namespace, worker)
    _wait_phase(node, namespace, "worker", {"Running"})

    def alive_nodes() -> int:
        out = _exec(node, namespace, "head", ["python3", "-c",
                                              "import ray; ray.init(address='auto', logging_level='ERROR'); "
                                              "print(sum(n['Alive'] for n in ray.nodes()))"])
        return int(out.strip().splitlines()[-1])

    eventually(alive_nodes, lambda n: n == 2, timeout=120, interval=2, description="2 alive Ray nodes")
    version = _exec(node, namespace, "head", ["ray", "--version"])
    assert "2.46.0" in version, f"the pod runs the image's Ray, got {version!r}"


def test_the_node_leaves_nothing_behind(tmp_path: Path) -> None:
    """A node of its own, stopped: no process, namespace, veth, cgroup, mount or iptables chain of it remains."""
    from pytest_kuberay.providers.local.cluster import local_cluster
    from pytest_kuberay.providers.local.node.node import LocalNode

    with local_cluster() as cluster:
        local_node = LocalNode(cluster.control_plane, cluster.handle, cluster.run, cluster.process)
        try:
            local_node.start()
            local_node.provide_image(IMAGE)
            ns = "leftovers"
            create_namespace(cluster.handle, ns)
            cluster.handle.core.create_namespaced_pod(ns, _pod("sleeper", ["sleep", "600"]))
            eventually(lambda: cluster.handle.core.read_namespaced_pod("sleeper", ns).status.phase,
                       lambda phase: phase == "Running", timeout=120, interval=0.5, description="sleeper Running")
            run_dir, run_id, net = cluster.run_dir, cluster.run.run_id, local_node.network.name
            cgroup_dirs = local_node.cgroups.dirs()
            assert local_node.cgroups.pids(), "the pod's processes are in the run's cgroups"
        finally:
            local_node.stop()
    assert not run_dir.exists()
    assert not network.netns_exists(net) and not network.link_exists(net)
    assert not [d for d in cgroup_dirs if d.exists()], "cgroups left behind"
    leftovers = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes of run {run_id} left: {leftovers}"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(run_dir) not in mounts
    assert "KUBE-SERVICES" not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
