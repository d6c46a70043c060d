"""The local provider's whole stack: control plane, real node, Traefik, the real operator; nothing left after.

The operator creates the RayCluster and Gateway for a RayService with
NewClusterWithIncrementalUpgrade; Traefik accepts and programs the Gateway; the
node runs the Ray pods from the image built for the RayService's Ray version.
The end-to-end upgrade itself is the suites' job (suites/).
"""

from __future__ import annotations

from pathlib import Path

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.providers.namespaces import create_namespace, delete_namespace
from pytest_kuberay.settings import default_settings
from pytest_kuberay.versions import parse_version
from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, echo_rayservice, serve_app_configmap
from tests.support.local_provider import NEEDS_LOCAL_PROVIDER

pytestmark = NEEDS_LOCAL_PROVIDER

GATEWAY_API = ("gateway.networking.k8s.io", "v1")


def _conditions(obj: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}


def test_operator_creates_cluster_and_gateway_and_the_node_runs_the_ray_pods(tmp_path: Path) -> None:
    from pytest_kuberay.providers.local import network
    from pytest_kuberay.stacks.local import local_stack

    version = parse_version("v1.5.1")
    settings = default_settings(artifacts_dir=tmp_path, versions=(version,))
    with local_stack(settings) as stack:
        cluster = stack.handle
        run_dir = stack.cluster.run_dir
        net = stack.cluster.control_plane.network.name
        operator = stack.install_kuberay(version)
        try:
            operator.ready()
            create_namespace(cluster, "stack")
            options = IncrementalUpgradeOptions(gateway_class="traefik", max_surge_percent=20, step_size_percent=20)
            manifest = echo_rayservice("echo", "stack", settings.ray_image_for(version), options)
            apply_manifests(cluster.dynamic, [serve_app_configmap("echo", "stack"), manifest])

            clusters = eventually(
                lambda: cluster.custom.list_namespaced_custom_object("ray.io", "v1", "stack", "rayclusters")["items"],
                lambda items: len(items) == 1, timeout=60, interval=1,
                description="the operator to create one RayCluster")
            ray_cluster = clusters[0]["metadata"]["name"]
            assert ray_cluster.startswith("echo-")

            gateway = eventually(
                lambda: cluster.custom.get_namespaced_custom_object(*GATEWAY_API, "stack", "gateways", "echo-gateway"),
                lambda gw: _conditions(gw).get("Accepted") == "True" and _conditions(gw).get("Programmed") == "True",
                timeout=90, interval=1, description="Gateway echo-gateway Accepted and Programmed by Traefik",
                show=lambda gw: repr(_conditions(gw)))
            assert gateway["spec"]["gatewayClassName"] == "traefik"

            pods = eventually(lambda: cluster.core.list_namespaced_pod("stack").items,
                              lambda items: len(items) == 2 and all(p.status.phase == "Running" for p in items),
                              timeout=180, interval=1, description="head and worker pods Running on the node",
                              show=lambda items: repr([(p.metadata.name, p.status.phase) for p in items]))
            assert {p.metadata.labels.get("ray.io/node-type") for p in pods} == {"head", "worker"}
            assert all(p.spec.node_name == "pytest-kuberay-node" for p in pods)
            assert {c.image for p in pods for c in p.status.container_statuses} == {"docker.io/rayproject/ray:2.46.0"}
            delete_namespace(cluster, "stack", timeout=120)
        finally:
            operator.stop()
    assert not run_dir.exists()
    assert not network.netns_exists(net) and not network.link_exists(net)
