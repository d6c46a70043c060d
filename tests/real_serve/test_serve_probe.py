"""The Serve probe against a real Ray Serve: parsing, errors as data, validation before PUT."""

from __future__ import annotations

import httpx
import pytest

from pytest_kuberay._support.processes import free_port
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.errors import ServeConfigError
from pytest_kuberay.observe.serve_probe import ServeProbe, config_fingerprint
from pytest_kuberay.workloads.serve_apps import echo_serve_config

pytestmark = pytest.mark.slow


@pytest.fixture
def running_echo(two_ray_clusters):
    """Cluster A running the echo app at target capacity 60, RUNNING."""
    cluster = two_ray_clusters[0]
    config = echo_serve_config("probe-v1") | {
        "http_options": {"host": "127.0.0.1", "port": cluster.ports["serve"]},
        "target_capacity": 60,
    }
    with ServeProbe.direct(cluster.name, cluster.dashboard_url) as probe:
        probe.put_config(config)
        eventually(probe.snapshot,
                   lambda s: "echo" in s.apps and s.apps["echo"].status == "RUNNING"
                   and s.apps["echo"].deployed_app_config["deployments"][0]["user_config"]["version"] == "probe-v1",
                   timeout=120, interval=1, description="echo probe-v1 RUNNING")
        yield cluster, probe, config


def test_snapshot_agrees_with_rays_own_schema(running_echo) -> None:
    from ray.serve.schema import ServeInstanceDetails

    cluster, probe, config = running_echo
    snap = probe.snapshot()
    raw = httpx.get(cluster.dashboard_url + "/api/serve/applications/").json()
    details = ServeInstanceDetails.model_validate(raw)
    assert snap.ok and snap.target_capacity == details.target_capacity == 60.0
    app = snap.apps["echo"]
    assert app.status == details.applications["echo"].status.value == "RUNNING"
    # deployed_app_config echoes exactly what we PUT for the app
    assert app.deployed_app_config == config["applications"][0]
    assert app.fingerprint == config_fingerprint(config["applications"][0])
    deployment = app.deployments["Echo"]
    assert deployment.target_num_replicas == details.applications["echo"].deployments["Echo"].target_num_replicas
    assert deployment.target_num_replicas == 1  # max(1, round(2 * 60 / 100))
    assert sum(deployment.replica_states.values()) >= 1


def test_unreachable_dashboard_is_a_snapshot_with_an_error() -> None:
    port = free_port()  # nobody listens there
    with ServeProbe.direct("gone", f"http://127.0.0.1:{port}", timeout=1) as probe:
        snap = probe.snapshot()
    assert not snap.ok and "ConnectError" in (snap.error or "")
    assert snap.apps == {} and snap.cluster == "gone"


def test_http_error_is_a_snapshot_with_an_error(two_ray_clusters) -> None:
    cluster = two_ray_clusters[0]
    client = httpx.Client(base_url=cluster.dashboard_url, timeout=5)
    with ServeProbe(cluster.name, client, path_prefix="/no-such-prefix") as probe:
        snap = probe.snapshot()
    assert snap.error is not None and snap.error.startswith("HTTP 404")


def test_invalid_config_is_refused_before_any_put(running_echo) -> None:
    _, probe, _config = running_echo
    bad = echo_serve_config("probe-v2")
    bad["applications"][0]["deployments"][0]["num_replicas"] = "many"
    with pytest.raises(ServeConfigError, match=r"applications\.0\.deployments\.0: .*num_replicas"):
        probe.put_config(bad)
    version = probe.snapshot().apps["echo"].deployed_app_config["deployments"][0]["user_config"]["version"]
    assert version == "probe-v1", "an invalid config reached the cluster"
