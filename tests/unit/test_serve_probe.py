"""ServeProbe over an in-memory HTTP transport: parsing, and failures that become error snapshots."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pytest_kuberay.errors import ServeConfigError
from pytest_kuberay.observe.serve_probe import SERVE_APPLICATIONS_PATH, ServeProbe, config_fingerprint
from tests.unit.timeline_builders import app_config, payload

Handler = Callable[[httpx.Request], httpx.Response]


def probe(handler: Handler, prefix: str = "") -> ServeProbe:
    client = httpx.Client(base_url="http://dashboard:8265", transport=httpx.MockTransport(handler))
    return ServeProbe("rs-a", client, prefix)


def test_snapshot_parses_apps_deployments_and_capacity() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=payload("v1", target_capacity=40))

    with probe(handler, "/api/v1/namespaces/ns/services/svc:dashboard/proxy/") as p:
        snap = p.snapshot()
    assert seen == ["/api/v1/namespaces/ns/services/svc:dashboard/proxy" + SERVE_APPLICATIONS_PATH]
    assert snap.ok and snap.cluster == "rs-a"
    assert snap.target_capacity == 40.0
    app = snap.apps["echo"]
    assert (app.status, app.deployed_app_config) == ("RUNNING", app_config("v1"))
    deployment = app.deployments["Echo"]
    assert (deployment.status, deployment.target_num_replicas, deployment.replica_states) == (
        "HEALTHY", 2, {"RUNNING": 2})
    assert snap.fingerprints() == {"echo": config_fingerprint(app_config("v1"))}


def test_fingerprint_ignores_key_order() -> None:
    config = app_config("v1")
    reordered = json.loads(json.dumps(dict(reversed(list(config.items())))))
    assert config_fingerprint(config) == config_fingerprint(reordered)
    assert config_fingerprint(config) != config_fingerprint(app_config("v2"))
    assert config_fingerprint(None) is None


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (lambda r: httpx.Response(503, text="service\nunavailable"), "HTTP 503: service unavailable"),
        (_refused, "ConnectError: connection refused"),
        (lambda r: httpx.Response(200, text="<html>login</html>"), "JSONDecodeError"),
        (lambda r: httpx.Response(200, json=["not", "an", "object"]), ""),
    ],
    ids=["http-503", "refused", "not-json", "json-list"],
)
def test_failed_reads_become_error_snapshots(handler: Handler, error: str) -> None:
    snap = probe(handler).snapshot()
    assert not snap.ok
    assert snap.error is not None and error in snap.error
    assert snap.apps == {}


def test_put_config_validates_before_sending() -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200)

    good = {"applications": [{"name": "echo", "import_path": "echo:app", "route_prefix": "/"}]}
    p = probe(handler)
    p.put_config(good)
    assert sent == [good]
    with pytest.raises(ServeConfigError, match="import_path"):
        p.put_config({"applications": [{"name": "echo"}]})
    assert len(sent) == 1


def test_put_config_rejection_carries_serve_message() -> None:
    p = probe(lambda r: httpx.Response(400, text="bad route_prefix"))
    with pytest.raises(RuntimeError, match="answered 400: bad route_prefix"):
        p.put_config({"applications": [{"name": "echo", "import_path": "echo:app"}]})
