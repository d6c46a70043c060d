"""The #5148 suite's pieces without a cluster: its two specs, the echo app's Gate, when it acts and what it needs.

The suite's verdict rests on these: a second spec that started a new cluster or a rollback, or a
Gate that blocked Echo, would test something else; a release before the pending cluster is
really RUNNING, or a precondition read from the wrong sample, would skip or judge the wrong run.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
from typing import Any

import pytest
import yaml

from pytest_kuberay.observe.rayservice_status import ClusterStatus, RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeSnapshot, parse_applications
from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.workloads.manifest import starts_an_upgrade, upgraded_manifest
from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, echo_rayservice
from pytest_kuberay.workloads.serve_apps import SERVE_APPS_DIR
from pytest_kuberay.workloads.serve_config import validate_serve_config
from suites.serve_service.gated_specs import GATE, HOLD_KEY, UPGRADE_ENV, gate_hold, gated_upgrade, released
from suites.serve_service.test_serve_service_after_promotion import pending_held, traffic_moved_before_ready

OLD, NEW = "echo-old", "echo-new"


@pytest.fixture
def deployed() -> dict[str, Any]:
    options = IncrementalUpgradeOptions("traefik", max_surge_percent=100, step_size_percent=100, interval_seconds=3600)
    return echo_rayservice("echo", "ns", "rayproject/ray:2.46.0", options)


def _app(manifest: dict[str, Any]) -> dict[str, Any]:
    [app] = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    return dict(app)


def test_the_upgrade_starts_a_new_cluster_running_the_gated_echo_app(deployed: dict[str, Any]) -> None:
    before = copy.deepcopy(deployed)
    upgraded = upgraded_manifest(deployed, gated_upgrade(5))  # checks the Serve config with Ray's schema
    assert deployed == before, "the edit works on a copy"
    assert starts_an_upgrade(deployed, upgraded)
    assert upgraded["spec"]["rayClusterDeletionDelaySeconds"] == 5
    worker = upgraded["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert UPGRADE_ENV in worker["env"]
    app = _app(upgraded)
    assert app["import_path"] == "echo:gated_app"
    assert {d["name"]: d["user_config"] for d in app["deployments"]} == {"Echo": {"version": "v2"},
                                                                         GATE: {HOLD_KEY: 0}}


def test_the_release_changes_only_the_interval_and_the_gate_hold(deployed: dict[str, Any]) -> None:
    upgraded = upgraded_manifest(deployed, gated_upgrade(5))
    kept = copy.deepcopy(upgraded)
    release = released(upgraded, 60)
    assert upgraded == kept, "the release is a copy"
    validate_serve_config(yaml.safe_load(release["spec"]["serveConfigV2"]))
    # the same cluster spec: the operator keeps its pending cluster (no new one, no rollback)
    assert not starts_an_upgrade(upgraded, release)
    assert release["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]["intervalSeconds"] == 1
    old_app, new_app = _app(upgraded), _app(release)
    assert gate_hold(new_app) == 60 and gate_hold(old_app) == 0
    # Echo keeps its config, so only the Gate is reconfigured and requests keep their answers
    assert [d for d in new_app["deployments"] if d["name"] != GATE] == [
        d for d in old_app["deployments"] if d["name"] != GATE]
    for manifest in (upgraded, release):
        manifest["spec"]["upgradeStrategy"]["clusterUpgradeOptions"].pop("intervalSeconds")
        manifest["spec"].pop("serveConfigV2")
    assert release == upgraded


def test_the_release_needs_the_gated_app(deployed: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no Gate: apply gated_upgrade first"):
        released(deployed, 60)
    assert gate_hold({"deployments": [{"name": "Echo"}]}) is None


def _echo_module() -> Any:
    """The shipped echo app, imported as Serve would (no Ray cluster is started by defining deployments)."""
    spec = importlib.util.spec_from_file_location("echo_under_test", SERVE_APPS_DIR / "echo" / "echo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_echo_app_is_unchanged_and_its_gate_holds_without_blocking() -> None:
    echo = _echo_module()
    assert inspect.iscoroutinefunction(echo.Gate.func_or_class.reconfigure), (
        "the Gate must sleep asynchronously: a blocking reconfigure would stall the replica's health checks")
    plain = echo.Echo.func_or_class()  # what `app` deploys: no gate, the same answers
    plain.reconfigure({"version": "v7"})
    assert plain.version == "v7" and plain.gate is None


def _payload(status: str, hold: float, capacity: float | None) -> dict[str, Any]:
    config = {"name": "echo", "import_path": "echo:gated_app", "route_prefix": "/",
              "deployments": [{"name": "Echo", "user_config": {"version": "v2"}},
                              {"name": GATE, "user_config": {HOLD_KEY: hold}}]}
    return {"target_capacity": capacity,
            "applications": {"echo": {"status": status, "deployed_app_config": config, "deployments": {}}}}


def _new(status: str = "RUNNING", hold: float = 0, capacity: float | None = 100) -> ServeSnapshot:
    return parse_applications(NEW, _payload(status, hold, capacity), 0.0)


def _sample(t: float, active_tc: int, pending_tc: int | None, traffic: int, new_apps: str = "RUNNING",
            new: ServeSnapshot | None = None) -> Sample:
    """A status of the upgrade from OLD to NEW (``pending_tc=None``: NEW promoted) and NEW's live state."""
    if pending_tc is None:
        st = RayServiceStatus(ClusterStatus(NEW, 100, 100, {"echo": new_apps}), None)
    else:
        st = RayServiceStatus(ClusterStatus(OLD, active_tc, 100 - traffic, {"echo": "RUNNING"}),
                              ClusterStatus(NEW, pending_tc, traffic, {"echo": new_apps}))
    return Sample(t, st, {NEW: new or _new()})


def test_the_release_waits_for_a_full_pending_cluster_running_for_longer_than_a_reconcile() -> None:
    when = pending_held(5.0)
    seen = [when(s) for s in (
        _sample(0.0, 100, 0, 0),                             # not at full capacity yet
        _sample(1.0, 100, 100, 0, new_apps="DEPLOYING"),     # the status says it is not ready
        _sample(2.0, 100, 100, 0, new=_new(capacity=0)),     # the live capacity push has not landed
        _sample(3.0, 100, 100, 0),
        _sample(7.0, 100, 100, 0, new=_new("DEPLOYING")),    # live: not RUNNING, the clock restarts
        _sample(8.0, 100, 100, 0),
        _sample(12.0, 100, 100, 0),
        _sample(13.0, 100, 100, 0, new=_new(capacity=None)),  # null target_capacity is full capacity too
    )]
    assert seen == [False, False, False, False, False, False, False, True]


def _race(new_at_full_traffic: ServeSnapshot) -> Timeline:
    samples = [_sample(0.0, 100, 100, 0), _sample(1.0, 100, 100, 100, new=new_at_full_traffic),
               _sample(2.0, 0, None, 100, new_apps="DEPLOYING", new=new_at_full_traffic)]
    return Timeline(samples, None, 0.5, reconcile_seconds=5.0)


def test_the_precondition_is_all_the_traffic_on_apps_not_running() -> None:
    found = traffic_moved_before_ready(_race(_new("DEPLOYING", hold=60)))
    assert found == f"{NEW} had all the traffic at t=1.0s with its apps {{'echo': 'DEPLOYING'}} " \
                    "(Gate hold {'echo': 60.0}, seen at t=1.0s)"
    assert traffic_moved_before_ready(_race(_new("RUNNING", hold=60))) is None


def test_the_precondition_reads_the_live_state_within_a_reconcile_of_the_move() -> None:
    failed = ServeSnapshot(NEW, 0.0, error="ConnectError")
    late = _race(failed)
    late.samples.append(_sample(5.5, 0, None, 100, new=_new("DEPLOYING", hold=60)))
    assert traffic_moved_before_ready(late) is not None
    too_late = _race(failed)
    too_late.samples.append(_sample(7.0, 0, None, 100, new=_new("DEPLOYING", hold=60)))
    assert traffic_moved_before_ready(too_late) is None
    never = Timeline([_sample(0.0, 100, 100, 0)], None, 0.5)
    assert traffic_moved_before_ready(never) is None
