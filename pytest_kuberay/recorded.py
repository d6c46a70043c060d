"""One recorded upgrade shared by several tests: an upgrade takes minutes, each test judges it its own way.

A suite's conftest.py says which scenarios to record (maxSurge/stepSize shapes of the echo
app, or the user's own manifest pair from ``--kuberay-rayservice``/``--kuberay-upgrade-to``)
and gets two fixtures: a module-scoped ``recorded_upgrade`` that deploys, upgrades and
records once per (KubeRay version, scenario), and a function-scoped ``upgrade_record``
that hands it to a test (attaching the plot to its report).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.drive.deploy import DeployedRayService, deploy_rayservice, wait_gateway_ready
from pytest_kuberay.drive.traffic import ECHO_TRAFFIC, TrafficSpec
from pytest_kuberay.drive.upgrade import VERDICT_REACHED, gateway_url, record_upgrade
from pytest_kuberay.errors import KubeRayTestError
from pytest_kuberay.known_bugs import BUG_KEY
from pytest_kuberay.observe.timeline import Timeline
from pytest_kuberay.phase_reports import failed_or_xfailed
from pytest_kuberay.protocols import KubeRayCluster, KubeRayOperator, SampleListener
from pytest_kuberay.providers.namespaces import create_namespace, delete_namespace
from pytest_kuberay.report.artifacts import collect_failure_artifacts, save_timeline
from pytest_kuberay.settings import Settings
from pytest_kuberay.verdict.early import bugs_confirmed
from pytest_kuberay.verdict.ray_versions import ray_version_mismatches
from pytest_kuberay.versions import KubeRayVersion
from pytest_kuberay.workloads.manifest import (
    ManifestEdit,
    ManifestSource,
    images_of,
    mount_apps,
    prepare_rayservice,
    starts_an_upgrade,
    upgrade_options,
    upgraded_manifest,
)
from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, apply_change, echo_rayservice, upgrade_plan

__all__ = ["RecordedUpgrade", "UpgradeScenario", "fail_on_new_operator_restarts", "operator_restarts",
           "recorded_upgrade_fixture", "user_scenarios", "verdict_check"]


@dataclass(frozen=True)
class UpgradeScenario:
    """What to deploy and roll out. Without ``manifest``: the echo app, worker CPU and user_config changing."""

    id: str
    max_surge_percent: int | None = None
    step_size_percent: int | None = None
    interval_seconds: int | None = None
    manifest: ManifestSource | None = None
    upgrade_to: ManifestSource | ManifestEdit | None = None
    apps: Mapping[str, Path] = field(default_factory=dict)
    traffic: Sequence[TrafficSpec] | None = None

    @property
    def is_echo(self) -> bool:
        return self.manifest is None


@dataclass
class RecordedUpgrade:
    scenario: UpgradeScenario
    timeline: Timeline
    deployed: DeployedRayService
    old_cluster: str
    artifacts: Path
    plot: Path
    old_cluster_deleted: bool
    ray_version_problems: list[str]
    max_surge_percent: int
    failed_tests: list[str] = field(default_factory=list)


def user_scenarios(config: pytest.Config | Settings) -> list[UpgradeScenario]:
    """The user's own pair (``--kuberay-rayservice``, ``--kuberay-upgrade-to``), or none."""
    if isinstance(config, Settings):
        settings = config
    else:
        from pytest_kuberay.settings import settings_of

        settings = settings_of(config)
    if settings.rayservice is None:
        return []
    apps = {path.name: path for path in settings.apps}
    traffic = [TrafficSpec(path) for path in settings.traffic_paths]
    return [UpgradeScenario("yours", manifest=settings.rayservice, upgrade_to=settings.upgrade_to, apps=apps,
                            traffic=traffic)]


def operator_restarts(operator: object) -> dict[str, str]:
    """Restarts of the operator's containers by the kubelet so far (none for operators we cannot see into)."""
    counter = getattr(operator, "container_restarts", None)
    return dict(counter()) if callable(counter) else {}


def fail_on_new_operator_restarts(operator: object, before: dict[str, str]) -> None:
    """An operator restart nobody asked for voids an upgrade's verdict: it empties the operator's caches (4717)."""
    after = operator_restarts(operator)
    new = {pod: why for pod, why in after.items() if before.get(pod) != why}
    if new:
        pytest.fail("the KubeRay operator's container was restarted by the kubelet during the upgrade ("
                    + "; ".join(f"{pod}: {why}" for pod, why in new.items())
                    + "): an operator restart loses its Serve-config cache, so this run says nothing about the "
                    "upgrade itself; see the operator log in the artifacts", pytrace=False)


def _sharing_tests(request: pytest.FixtureRequest, version: KubeRayVersion, scenario: UpgradeScenario
                   ) -> list[pytest.Item]:
    """The collected tests that judge this module's recording for this version and scenario."""
    def shares(item: pytest.Item) -> bool:
        params = getattr(getattr(item, "callspec", None), "params", {})
        return (getattr(item, "module", None) is request.module and "recorded_upgrade" in getattr(
            item, "fixturenames", ()) and params.get("kuberay_version") == version
            and params.get("upgrade_scenario") == scenario)

    return [item for item in request.session.items if shares(item)]


def verdict_check(items: Sequence[pytest.Item]) -> Callable[[Timeline], bool] | None:
    """Ends a recording early when every test sharing it expects a known bug that the recording already shows."""
    verdicts = [item.stash.get(BUG_KEY, None) for item in items]
    bugs = [v.bug for v in verdicts if v is not None and v.expected_to_fail]
    if not items or len(bugs) != len(items):
        return None
    return bugs_confirmed(list({bug.id: bug for bug in bugs}.values()))


def _deleted_in_time(deployed: DeployedRayService, cluster: str, timeout: float) -> bool:
    try:
        eventually(lambda: _cluster_exists(deployed, cluster), lambda exists: not exists, timeout=timeout,
                   interval=2, description=f"old RayCluster {cluster} deleted after promotion")
    except AssertionError:
        return False
    return True


def _cluster_exists(deployed: DeployedRayService, name: str) -> bool:
    items = deployed.cluster.custom.list_namespaced_custom_object("ray.io", "v1", deployed.namespace,
                                                                  "rayclusters")["items"]
    return any(i["metadata"]["name"] == name for i in items)


def _manifests(scenario: UpgradeScenario, namespace: str, gateway_class: str, ray_image: str
               ) -> tuple[dict[str, Any], dict[str, Any], list[TrafficSpec]]:
    if scenario.is_echo:
        options = IncrementalUpgradeOptions(gateway_class, scenario.max_surge_percent or 20,
                                            scenario.step_size_percent or 20, scenario.interval_seconds or 5)
        before = echo_rayservice("echo", namespace, ray_image, options)
        return before, apply_change(before, "worker-cpu", "user-config"), list(scenario.traffic or [ECHO_TRAFFIC])
    assert scenario.manifest is not None and scenario.upgrade_to is not None
    before = prepare_rayservice(scenario.manifest, namespace=namespace, gateway_class=gateway_class,
                                max_surge_percent=scenario.max_surge_percent,
                                step_size_percent=scenario.step_size_percent,
                                interval_seconds=scenario.interval_seconds, apps=scenario.apps)
    after = mount_apps(upgraded_manifest(before, scenario.upgrade_to), scenario.apps)
    if not starts_an_upgrade(before, after):
        raise KubeRayTestError(f"{scenario.upgrade_to} changes nothing in spec.rayClusterConfig beyond worker "
                               f"scaling, so KubeRay applies it in place and starts no upgrade: change the cluster "
                               "spec (an image, resources, env)")
    return before, after, list(scenario.traffic or [TrafficSpec("/")])


def recorded_upgrade_fixture() -> tuple[Any, Any]:
    """``recorded_upgrade, upgrade_record = recorded_upgrade_fixture()`` in a suite's conftest.py.

    The conftest parametrizes ``upgrade_scenario`` (module scope) with :class:`UpgradeScenario`
    objects in its ``pytest_generate_tests``.
    """

    @pytest.fixture(scope="module")
    def recorded_upgrade(request: pytest.FixtureRequest, upgrade_scenario: UpgradeScenario,
                         kuberay_cluster: KubeRayCluster, kuberay_operator: KubeRayOperator,
                         kuberay_version: KubeRayVersion, kuberay_settings: Settings,
                         kuberay_progress: Callable[[str], list[SampleListener]]) -> Iterator[RecordedUpgrade]:
        """Deploy, roll the scenario's change out, record to promotion: once per version and scenario."""
        scenario = upgrade_scenario
        handle = kuberay_cluster.handle
        suffix = kuberay_version.label.replace(".", "-").replace("+", "-")
        namespace = re.sub(r"[^a-z0-9-]", "-", f"kr-upgrade-{scenario.id}-{suffix}".lower())[:63].strip("-")
        artifacts = kuberay_settings.artifacts_dir / re.sub(r"[^A-Za-z0-9_.+-]+", "_",
                                                            f"{request.module.__name__}-{kuberay_version.label}-"
                                                            f"{scenario.id}")
        artifacts.mkdir(parents=True, exist_ok=True)
        record: RecordedUpgrade | None = None
        try:
            gateway_class = kuberay_settings.gateway_class or handle.default_gateway_class
            before, after, traffic = _manifests(scenario, namespace, gateway_class,
                                                kuberay_settings.ray_image_for(kuberay_version))
            kuberay_cluster.provide_images([*images_of(before), *images_of(after)])
        except KubeRayTestError as exc:
            pytest.fail(str(exc), pytrace=False)
        create_namespace(handle, namespace)
        try:
            deployed = deploy_rayservice(handle, before, timeout=kuberay_settings.timeout(600),
                                         apps=None if scenario.is_echo else scenario.apps, traffic=traffic,
                                         operator_ready=kuberay_operator.ready)
            url = gateway_url(kuberay_cluster, deployed)
            wait_gateway_ready(deployed, url, timeout=kuberay_settings.timeout(120))
            old_cluster = deployed.status().active.cluster  # type: ignore[union-attr]
            labels = ({"cluster_change": "worker-cpu", "serve_change": "user-config"} if scenario.is_echo
                      else {"to": str(scenario.upgrade_to)})
            plan = upgrade_plan(before, after, labels)
            listeners = kuberay_progress(f"{kuberay_version.label} {scenario.id}")
            restarts_before = operator_restarts(kuberay_operator)
            timeline = record_upgrade(deployed, after, plan, timeout=kuberay_settings.timeout(900),
                                      listeners=listeners, traffic_url=url, traffic=traffic,
                                      decided=verdict_check(_sharing_tests(request, kuberay_version, scenario)))
            fail_on_new_operator_restarts(kuberay_operator, restarts_before)
            title = (f"KubeRay {kuberay_version.label}: incremental upgrade ({scenario.id}), maxSurge "
                     f"{plan.max_surge_percent}%, stepSize {plan.step_size_percent}%")
            _, plot = save_timeline(timeline, artifacts, title)
            ray_problems = ray_version_mismatches(timeline, before, after)
            # the old cluster goes after rayClusterDeletionDelaySeconds (0 in our manifest, 60 by default);
            # a recording that ended at its tests' verdict never reached promotion
            deleted = VERDICT_REACHED not in timeline.markers and _deleted_in_time(
                deployed, old_cluster, kuberay_settings.timeout(120 + float(
                    before["spec"].get("rayClusterDeletionDelaySeconds", 60))))
            record = RecordedUpgrade(scenario, timeline, deployed, old_cluster, artifacts, plot, deleted,
                                     ray_problems, upgrade_options(before).max_surge_percent)
            yield record
        finally:
            if record is None or record.failed_tests:
                collect_failure_artifacts(kuberay_cluster, namespace, artifacts)
            delete_namespace(handle, namespace, timeout=kuberay_settings.timeout(120))

    @pytest.fixture
    def upgrade_record(request: pytest.FixtureRequest, recorded_upgrade: RecordedUpgrade) -> Iterator[RecordedUpgrade]:
        """The module's recorded upgrade, with its plot attached to this test's JUnit properties."""
        versions = ", ".join(sorted(set(recorded_upgrade.timeline.ray_versions.values())))
        request.node.user_properties += [("kuberay_plot", str(recorded_upgrade.plot)),
                                         ("kuberay_artifacts", str(recorded_upgrade.artifacts)),
                                         ("kuberay_ray_versions", versions)]
        if recorded_upgrade.ray_version_problems:  # a verdict about another Ray than the image names is no verdict
            pytest.fail("the Ray clusters do not run their images' Ray version: "
                        + "; ".join(recorded_upgrade.ray_version_problems), pytrace=False)
        yield recorded_upgrade
        if failed_or_xfailed(request.node):
            recorded_upgrade.failed_tests.append(request.node.nodeid)

    return recorded_upgrade, upgrade_record
