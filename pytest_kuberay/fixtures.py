"""Fixtures the plugin offers: a cluster, KubeRay at each version, a namespace per test, RayServices, upgrades.

Session fixtures bring up what is expensive once (the cluster and its gateway
controller; the operator once per ``--kuberay-version``); function fixtures
give each test its own namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_kuberay.errors import KubeRayTestError, ManifestError
from pytest_kuberay.protocols import (
    KubeRayCluster,
    KubeRayOperator,
    Manifest,
    ManifestEdit,
    RayServiceFactory,
    SampleListener,
    UntilCondition,
    Upgrade,
)
from pytest_kuberay.settings import Settings
from pytest_kuberay.versions import KubeRayVersion

if TYPE_CHECKING:
    from pytest_kuberay.drive.deploy import DeployedRayService
    from pytest_kuberay.drive.traffic import TrafficSpec
    from pytest_kuberay.drive.upgrade import TriggerOnce
    from pytest_kuberay.observe.timeline import Timeline

__all__ = [
    "check_ray_versions",
    "kuberay_artifacts",
    "kuberay_cluster",
    "kuberay_namespace",
    "kuberay_operator",
    "kuberay_progress",
    "kuberay_settings",
    "rayservice",
    "rayservice_factory",
    "upgrade",
]


@pytest.fixture(scope="session")
def kuberay_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's resolved, immutable settings."""
    from pytest_kuberay.settings import settings_of

    return settings_of(pytestconfig)


@pytest.fixture
def kuberay_artifacts(request: pytest.FixtureRequest, kuberay_settings: Settings) -> Path:
    """A directory for this test's artifacts (timeline JSON, plots, logs), named after the test."""
    from pytest_kuberay.report.artifacts import test_artifacts_dir

    return test_artifacts_dir(kuberay_settings.artifacts_dir, request.node.nodeid)


def _fail(exc: KubeRayTestError) -> None:
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kuberay_cluster(kuberay_settings: Settings, pytestconfig: pytest.Config) -> Iterator[KubeRayCluster]:
    """A cluster with the Gateway API CRDs and a gateway controller, from the chosen provider."""
    from pytest_kuberay.providers.select import resolve_provider

    provider = resolve_provider(kuberay_settings.provider)
    with ExitStack() as stack:
        try:
            if provider == "local":
                from pytest_kuberay.stacks.local import attached_stack, find_kept_run, local_stack

                kept = find_kept_run() if kuberay_settings.keep_cluster else None
                if kept is not None:  # --kuberay-keep-cluster: reuse the kept cluster, install only what differs
                    yield stack.enter_context(attached_stack(kept, kuberay_settings))
                else:
                    yield stack.enter_context(local_stack(kuberay_settings, keep=kuberay_settings.keep_cluster))
            elif provider == "kind":
                from pytest_kuberay.stacks.kind import ProviderUnavailable, kind_options, kind_stack

                try:
                    kind = stack.enter_context(kind_stack(kuberay_settings, **kind_options(pytestconfig)))
                except ProviderUnavailable as exc:  # a tool is missing on this machine: skip, saying which
                    pytest.skip(str(exc))
                yield kind
            else:
                from pytest_kuberay.stacks.existing import existing_stack

                yield stack.enter_context(existing_stack(kuberay_settings))
        except KubeRayTestError as exc:
            _fail(exc)


@pytest.fixture(scope="session")
def kuberay_operator(kuberay_cluster: KubeRayCluster, kuberay_version: KubeRayVersion,
                     kuberay_settings: Settings) -> Iterator[Any]:
    """KubeRay at ``kuberay_version``: its CRDs applied and the operator running with the incremental gate on."""
    try:
        operator = kuberay_cluster.install_kuberay(kuberay_version, kuberay_settings.source)
    except KubeRayTestError as exc:
        _fail(exc)
    try:
        yield operator
    finally:
        operator.stop()


def _namespace_name(request: pytest.FixtureRequest) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    base = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_")).strip("-")
    suffix = "-".join(p for p in (worker, secrets.token_hex(2)) if p)
    return f"kr-{base[: 50 - len(suffix)]}-{suffix}".strip("-")


@pytest.fixture
def kuberay_namespace(request: pytest.FixtureRequest, kuberay_cluster: KubeRayCluster, kuberay_settings: Settings,
                      kuberay_artifacts: Path) -> Iterator[str]:
    """A fresh namespace for one test; on failure its objects, events and logs go to the artifacts."""
    from pytest_kuberay.phase_reports import failed_or_xfailed
    from pytest_kuberay.providers.namespaces import create_namespace, delete_namespace
    from pytest_kuberay.report.artifacts import collect_failure_artifacts

    name = _namespace_name(request)
    create_namespace(kuberay_cluster.handle, name)
    try:
        yield name
    finally:
        if failed_or_xfailed(request.node):  # an xfail is evidence too
            collect_failure_artifacts(kuberay_cluster, name, kuberay_artifacts)
        delete_namespace(kuberay_cluster.handle, name, timeout=kuberay_settings.timeout(120))


def _traffic_specs(traffic: TrafficSpec | Sequence[TrafficSpec] | None, default: Sequence[TrafficSpec]
                   ) -> list[TrafficSpec]:
    from pytest_kuberay.drive.traffic import TrafficSpec

    if traffic is None:
        return list(default)
    return [traffic] if isinstance(traffic, TrafficSpec) else list(traffic)


@pytest.fixture
def rayservice_factory(kuberay_cluster: KubeRayCluster, kuberay_operator: KubeRayOperator, kuberay_namespace: str,
                       kuberay_version: KubeRayVersion, kuberay_settings: Settings) -> RayServiceFactory:
    """Deploy a RayService (ours, or any manifest) in the test's namespace and wait until it serves.

    ``manifest``: a YAML file or a dict (default: the shipped echo app). ``apps``: Serve app
    directories (name -> dir) shipped as ConfigMaps and mounted at ``/home/ray/apps/<name>``.
    The upgrade options override the manifest's; ``traffic`` says what to send through the
    Gateway (its first route is the readiness check). ``gateway_class`` names another
    GatewayClass than the cluster's: nothing then programs the Gateway, so its readiness is
    not waited for (a Gateway that never becomes ready is what such a test is about).
    """
    from pytest_kuberay.drive.deploy import deploy_rayservice, wait_gateway_ready
    from pytest_kuberay.drive.traffic import ECHO_TRAFFIC, TrafficSpec
    from pytest_kuberay.drive.upgrade import gateway_url
    from pytest_kuberay.workloads.manifest import images_of, prepare_rayservice
    from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, echo_rayservice

    cluster_gateway_class = kuberay_settings.gateway_class or kuberay_cluster.handle.default_gateway_class

    def deploy(manifest: str | Path | Manifest | None = None, *,
               apps: Mapping[str, str | Path] | None = None, name: str | None = None,
               max_surge_percent: int | None = None, step_size_percent: int | None = None,
               interval_seconds: int | None = None,
               traffic: TrafficSpec | Sequence[TrafficSpec] | None = None,
               gateway_class: str | None = None) -> DeployedRayService:
        gateway_class = gateway_class or cluster_gateway_class
        try:
            if manifest is None:
                options = IncrementalUpgradeOptions(
                    gateway_class=gateway_class, max_surge_percent=max_surge_percent or 20,
                    step_size_percent=step_size_percent or 20, interval_seconds=interval_seconds or 5)
                prepared = echo_rayservice(name or "echo", kuberay_namespace,
                                           kuberay_settings.ray_image_for(kuberay_version), options)
                app_dirs = None
                specs = _traffic_specs(traffic, [ECHO_TRAFFIC])
            else:
                app_dirs = {n: Path(d).expanduser() for n, d in (apps or {}).items()}
                prepared = prepare_rayservice(manifest, namespace=kuberay_namespace, gateway_class=gateway_class,
                                              name=name, max_surge_percent=max_surge_percent,
                                              step_size_percent=step_size_percent,
                                              interval_seconds=interval_seconds, apps=app_dirs)
                specs = _traffic_specs(traffic, [TrafficSpec("/")])
            kuberay_cluster.provide_images(images_of(prepared))
            deployed = deploy_rayservice(kuberay_cluster.handle, prepared, timeout=kuberay_settings.timeout(600),
                                         apps=app_dirs, traffic=specs, operator_ready=kuberay_operator.ready)
            if gateway_class == cluster_gateway_class:
                wait_gateway_ready(deployed, gateway_url(kuberay_cluster, deployed),
                                   timeout=kuberay_settings.timeout(120))
        except KubeRayTestError as exc:
            _fail(exc)
        return deployed

    return deploy


@pytest.fixture
def rayservice(rayservice_factory: RayServiceFactory) -> DeployedRayService:
    """The echo RayService with maxSurge 20 / stepSize 20, Ready and serving v1."""
    return rayservice_factory()


def _progress_listeners(config: pytest.Config, label: str) -> list[SampleListener]:
    """Live step lines on the terminal, unless pytest runs quiet (-q)."""
    from pytest_kuberay.report.terminal import StepPrinter

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or config.get_verbosity() < 0:
        return []

    def write(line: str) -> None:
        # output capture redirects fd 1 during a test; the live lines are for people watching, so bypass it
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return [StepPrinter(write, label)]


@pytest.fixture(scope="session")
def kuberay_progress(pytestconfig: pytest.Config) -> Callable[[str], list[SampleListener]]:
    """``kuberay_progress(label)``: recorder listeners printing live step lines (none under ``-q``)."""
    return lambda label: _progress_listeners(pytestconfig, label)


@pytest.fixture
def upgrade(request: pytest.FixtureRequest, kuberay_cluster: KubeRayCluster, kuberay_operator: KubeRayOperator,
            kuberay_settings: Settings, kuberay_artifacts: Path, kuberay_version: KubeRayVersion) -> Upgrade:
    """``upgrade(rs, to=...)``: roll a change out and record every step until promotion (or ``until``).

    ``to`` is the new manifest (a file or dict, kept in the RayService's namespace and name), or
    a callable that edits a copy of the current one. Without ``to``, named changes apply
    (``cluster_change="worker-cpu"``, ``serve_change="user-config"``: the echo app's). The
    pair must start an upgrade (a change of the cluster spec beyond scaling).
    """
    from pytest_kuberay.drive.upgrade import gateway_url, record_upgrade
    from pytest_kuberay.recorded import fail_on_new_operator_restarts, operator_restarts
    from pytest_kuberay.report.artifacts import save_timeline
    from pytest_kuberay.workloads.manifest import images_of, mount_apps, starts_an_upgrade, upgraded_manifest
    from pytest_kuberay.workloads.rayservice import apply_change, upgrade_plan

    def run(deployed: DeployedRayService, to: str | Path | Manifest | ManifestEdit | None = None, *,
            cluster_change: str | None = None, serve_change: str | None = None,
            traffic: bool | TrafficSpec | Sequence[TrafficSpec] = True, interval: float = 0.5,
            triggers: Sequence[TriggerOnce] = (), until: UntilCondition | None = None,
            until_description: str = "promotion of a new cluster") -> Timeline:
        try:
            if to is None:
                if cluster_change is None and serve_change is None:
                    cluster_change, serve_change = "worker-cpu", "user-config"
                new_manifest = apply_change(deployed.manifest, cluster_change, serve_change)
                labels = {"cluster_change": cluster_change or "", "serve_change": serve_change or ""}
            else:
                new_manifest = mount_apps(upgraded_manifest(deployed.manifest, to), deployed.apps)
                labels = {"to": str(to) if not callable(to) else getattr(to, "__name__", "edit")}
                if not starts_an_upgrade(deployed.manifest, new_manifest) and until is None:
                    raise ManifestError(
                        "the new manifest changes nothing in spec.rayClusterConfig beyond worker scaling, so KubeRay "
                        "applies it in place and starts no upgrade: change the cluster spec (an image, resources, "
                        "env), or pass until= for an in-place change")
            kuberay_cluster.provide_images(images_of(new_manifest))
        except KubeRayTestError as exc:
            _fail(exc)
        before = deployed.manifest
        plan = upgrade_plan(before, new_manifest, labels)
        specs = [] if traffic is False else deployed.traffic if traffic is True else _traffic_specs(traffic, [])
        url = gateway_url(kuberay_cluster, deployed) if specs else None
        restarts_before = operator_restarts(kuberay_operator)
        timeline = record_upgrade(deployed, new_manifest, plan, timeout=kuberay_settings.timeout(900),
                                  interval=interval,
                                  listeners=_progress_listeners(request.config, kuberay_version.label),
                                  traffic_url=url, traffic=specs, triggers=triggers, until=until,
                                  until_description=until_description)
        title = (f"KubeRay {kuberay_version.label}: {request.node.name} "
                 f"(maxSurge {plan.max_surge_percent}%, stepSize {plan.step_size_percent}%)")
        json_path, png_path = save_timeline(timeline, kuberay_artifacts, title)
        request.node.user_properties += [("kuberay_timeline", str(json_path)), ("kuberay_plot", str(png_path))]
        check_ray_versions(request.node, timeline, before, new_manifest)
        fail_on_new_operator_restarts(kuberay_operator, restarts_before)
        return timeline

    return run


def check_ray_versions(node: pytest.Item, timeline: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Record each cluster's Ray version for the summary; fail if one differs from its image's tag."""
    from pytest_kuberay.verdict.ray_versions import ray_version_mismatches

    versions = ", ".join(sorted(set(timeline.ray_versions.values())))
    node.user_properties.append(("kuberay_ray_versions", versions))
    problems = ray_version_mismatches(timeline, before, after)
    if problems:
        pytest.fail("the Ray clusters do not run their images' Ray version: " + "; ".join(problems), pytrace=False)
