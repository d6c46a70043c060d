"""One recorded upgrade per (KubeRay version, upgrade shape), judged by several tests.

An incremental upgrade takes minutes; the config-isolation, capacity-sequence
and traffic tests each judge the same recorded upgrade with their own
invariants, so a version costs one upgrade per shape instead of one per test.
maxSurge stays below 50 in every shape: with larger steps bug 4189 hides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_kuberay.drive.deploy import DeployedRayService, deploy_rayservice, wait_gateway_ready
from pytest_kuberay.drive.upgrade import gateway_url, record_upgrade
from pytest_kuberay.observe.timeline import Timeline
from pytest_kuberay.providers.namespaces import create_namespace, delete_namespace
from pytest_kuberay.report.artifacts import collect_failure_artifacts, save_timeline
from pytest_kuberay.settings import Settings
from pytest_kuberay.verdict.polling import eventually
from pytest_kuberay.verdict.ray_versions import ray_version_mismatches
from pytest_kuberay.versions import KubeRayVersion
from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, apply_change, echo_rayservice, upgrade_plan

SHAPES = {"surge20-step20": (20, 20), "surge25-step10": (25, 10)}
INTERVAL_SECONDS = 5


@dataclass
class RecordedUpgrade:
    timeline: Timeline
    deployed: DeployedRayService
    old_cluster: str
    artifacts: Path
    plot: Path
    old_cluster_deleted: bool
    ray_version_problems: list[str]
    failed_tests: list[str] = field(default_factory=list)


def _cluster_exists(deployed: DeployedRayService, name: str) -> bool:
    items = deployed.cluster.custom.list_namespaced_custom_object("ray.io", "v1", deployed.namespace,
                                                                  "rayclusters")["items"]
    return any(i["metadata"]["name"] == name for i in items)


@pytest.fixture(scope="module", params=list(SHAPES))
def recorded_upgrade(request: pytest.FixtureRequest, kuberay_cluster: Any, kuberay_operator: Any,
                     kuberay_version: KubeRayVersion, kuberay_settings: Settings,
                     kuberay_progress: Any) -> Iterator[RecordedUpgrade]:
    """Deploy the echo RayService, change worker CPU and user_config together, record to promotion."""
    max_surge, step_size = SHAPES[request.param]
    handle = kuberay_cluster.handle
    namespace = f"kr-upgrade-{request.param}-{kuberay_version.label.replace('.', '-').replace('+', '-')}"[:63]
    artifacts = kuberay_settings.artifacts_dir / re.sub(r"[^A-Za-z0-9_.+-]+", "_",
                                                        f"{request.module.__name__}-{kuberay_version.label}-"
                                                        f"{request.param}")
    artifacts.mkdir(parents=True, exist_ok=True)
    create_namespace(handle, namespace)
    record: RecordedUpgrade | None = None
    try:
        options = IncrementalUpgradeOptions(
            gateway_class=kuberay_settings.gateway_class or handle.default_gateway_class,
            max_surge_percent=max_surge, step_size_percent=step_size, interval_seconds=INTERVAL_SECONDS)
        manifest = echo_rayservice("echo", namespace, kuberay_settings.ray_image_for(kuberay_version), options)
        deployed = deploy_rayservice(handle, manifest, timeout=kuberay_settings.timeout(600))
        wait_gateway_ready(deployed, gateway_url(kuberay_cluster, deployed), timeout=kuberay_settings.timeout(120))
        old_cluster = deployed.status().active.cluster  # type: ignore[union-attr]
        new_manifest = apply_change(manifest, "worker-cpu", "user-config")
        plan = upgrade_plan(manifest, new_manifest, {"cluster_change": "worker-cpu", "serve_change": "user-config"})
        listeners = kuberay_progress(f"{kuberay_version.label} {request.param}")
        timeline = record_upgrade(deployed, new_manifest, plan, timeout=kuberay_settings.timeout(900),
                                  listeners=listeners, traffic_url=gateway_url(kuberay_cluster, deployed))
        title = f"KubeRay {kuberay_version.label}: incremental upgrade, maxSurge {max_surge}%, stepSize {step_size}%"
        _, plot = save_timeline(timeline, artifacts, title)
        ray_problems = ray_version_mismatches(timeline, manifest, new_manifest)
        try:  # rayClusterDeletionDelaySeconds is 0 in our manifest
            eventually(lambda: _cluster_exists(deployed, old_cluster), lambda exists: not exists,
                       timeout=kuberay_settings.timeout(120), interval=2,
                       description=f"old RayCluster {old_cluster} deleted after promotion")
            deleted = True
        except AssertionError:
            deleted = False
        record = RecordedUpgrade(timeline, deployed, old_cluster, artifacts, plot, deleted, ray_problems)
        yield record
    finally:
        if record is None or record.failed_tests:
            collect_failure_artifacts(kuberay_cluster, namespace, artifacts)
        delete_namespace(handle, namespace, timeout=kuberay_settings.timeout(120))


@pytest.fixture
def upgrade_record(request: pytest.FixtureRequest, recorded_upgrade: RecordedUpgrade) -> Iterator[RecordedUpgrade]:
    """The module's recorded upgrade, with its plot attached to this test's JUnit properties."""
    request.node.user_properties += [("kuberay_plot", str(recorded_upgrade.plot)),
                                     ("kuberay_artifacts", str(recorded_upgrade.artifacts)),
                                     ("kuberay_ray_versions",
                                      ", ".join(sorted(set(recorded_upgrade.timeline.ray_versions.values()))))]
    if recorded_upgrade.ray_version_problems:  # a verdict about another Ray than the image names is no verdict
        pytest.fail("the Ray clusters do not run their images' Ray version: "
                    + "; ".join(recorded_upgrade.ray_version_problems), pytrace=False)
    yield recorded_upgrade
    report = getattr(request.node, "rep_call", None)
    if report is not None and (report.failed or hasattr(report, "wasxfail")):
        recorded_upgrade.failed_tests.append(request.node.nodeid)
