"""Part 1 of the local provider: real control plane, Traefik and KubeRay operator; the pods stay Pending.

The real operator creates the RayCluster and Gateway for a RayService with
NewClusterWithIncrementalUpgrade; real Traefik accepts and programs the
Gateway. No node agent runs here, so the Ray pods are created and stay Pending.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_kuberay.install.apply import apply_manifests
from pytest_kuberay.providers.namespaces import create_namespace, delete_namespace
from pytest_kuberay.settings import default_settings
from pytest_kuberay.verdict.polling import eventually
from pytest_kuberay.versions import parse_version
from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, echo_rayservice, serve_app_configmap

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the local provider needs root (bridges, namespaces)"),
    pytest.mark.skipif(shutil.which("go") is None, reason="the local provider needs Go to build its binaries"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="the local provider needs iproute2 (`ip`)"),
]

GATEWAY_API = ("gateway.networking.k8s.io", "v1")


def _conditions(obj: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}


def test_operator_creates_cluster_and_gateway_with_traefik_status(tmp_path: Path) -> None:
    from pytest_kuberay.providers.local.network import our_bridges
    from pytest_kuberay.providers.local.stack import local_stack

    settings = default_settings(artifacts_dir=tmp_path)
    with local_stack(settings, run_pods=False) as stack:
        cluster = stack.handle
        run_dir = stack.cluster.run_dir
        bridge = stack.cluster.control_plane.network.name
        operator = stack.install_kuberay(parse_version("v1.5.1"))
        try:
            create_namespace(cluster, "part1")
            options = IncrementalUpgradeOptions(gateway_class="traefik", max_surge_percent=20, step_size_percent=20)
            manifest = echo_rayservice("echo", "part1", "rayproject/ray:2.46.0", options)
            apply_manifests(cluster.dynamic, [serve_app_configmap("echo", "part1"), manifest])

            clusters = eventually(
                lambda: cluster.custom.list_namespaced_custom_object("ray.io", "v1", "part1", "rayclusters")["items"],
                lambda items: len(items) == 1, timeout=60, interval=1,
                description="the operator to create one RayCluster")
            ray_cluster = clusters[0]["metadata"]["name"]
            assert ray_cluster.startswith("echo-")

            gateway = eventually(
                lambda: cluster.custom.get_namespaced_custom_object(*GATEWAY_API, "part1", "gateways", "echo-gateway"),
                lambda gw: _conditions(gw).get("Accepted") == "True" and _conditions(gw).get("Programmed") == "True",
                timeout=90, interval=1, description="Gateway echo-gateway Accepted and Programmed by Traefik",
                show=lambda gw: repr(_conditions(gw)))
            assert gateway["spec"]["gatewayClassName"] == "traefik"

            # KubeRay creates the HTTPRoute only once an *active* RayCluster exists (createHTTPRoute returns nil
            # before), and a cluster becomes active only when its Serve apps run: with no node agent that never
            # happens. The HTTPRoute's Accepted/ResolvedRefs statuses are checked end to end in part 2.
            routes = cluster.custom.list_namespaced_custom_object(*GATEWAY_API, "part1", "httproutes")["items"]
            assert routes == [], "an HTTPRoute appeared without an active RayCluster"

            pods = eventually(lambda: cluster.core.list_namespaced_pod("part1").items,
                              lambda items: {p.metadata.labels.get("ray.io/node-type") for p in items}
                              >= {"head", "worker"},
                              timeout=60, interval=1, description="head and worker pods created",
                              show=lambda items: repr([p.metadata.name for p in items]))
            assert all(p.status.phase == "Pending" for p in pods), "nothing runs pods in part 1"
            assert all(p.metadata.labels["ray.io/cluster"] == ray_cluster for p in pods)
            delete_namespace(cluster, "part1", timeout=120)
        finally:
            operator.stop()
    # nothing of ours is left
    assert not run_dir.exists()
    assert bridge not in our_bridges()
