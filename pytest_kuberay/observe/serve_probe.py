"""Read one Ray cluster's live Serve state: ``GET /api/serve/applications/``.

This is the observation no upstream test makes: which Serve config each Ray
cluster actually runs, at what ``target_capacity``. The probe reaches the
dashboard either directly (a base URL) or through the Kubernetes API server's
service proxy, with the kubeconfig's credentials, so neither kind nor the local
provider needs port-forwards.

A failed read never raises: it becomes a snapshot carrying the error, so a
recorder sampling many clusters keeps going while one is restarting.

We read the handful of fields we need from the JSON ourselves instead of
``ray.serve.schema.ServeInstanceDetails``: those models forbid unknown fields,
and the cluster's Ray (an image) is often newer or older than the Ray installed
next to pytest. ``tests/real_serve`` checks that both readings agree.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_kuberay.workloads.serve_config import validate_serve_config

__all__ = [
    "AppSnapshot",
    "DeploymentSnapshot",
    "ServeProbe",
    "ServeSnapshot",
    "api_server_http",
    "config_fingerprint",
]

SERVE_APPLICATIONS_PATH = "/api/serve/applications/"  # the trailing slash is required
VERSION_PATH = "/api/version"  # the dashboard's version endpoint: {"ray_version": "2.46.0", ...}


def config_fingerprint(config: dict[str, Any] | None) -> str | None:
    """A short stable hash of an app config: equal configs, equal fingerprints, whatever the key order."""
    if config is None:
        return None
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DeploymentSnapshot:
    name: str
    status: str
    target_num_replicas: int | None
    replica_states: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AppSnapshot:
    name: str
    status: str
    deployed_app_config: dict[str, Any] | None
    deployments: dict[str, DeploymentSnapshot] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str | None:
        return config_fingerprint(self.deployed_app_config)


@dataclass(frozen=True)
class ServeSnapshot:
    """One observation of one cluster. ``error`` is set when the read failed."""

    cluster: str
    taken_at: float  # time.monotonic()
    target_capacity: float | None = None
    apps: dict[str, AppSnapshot] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fingerprints(self) -> dict[str, str | None]:
        return {name: app.fingerprint for name, app in self.apps.items()}


def parse_applications(cluster: str, payload: dict[str, Any], taken_at: float) -> ServeSnapshot:
    """Turn a ``GET /api/serve/applications/`` body into a snapshot."""
    apps: dict[str, AppSnapshot] = {}
    for app_name, app in (payload.get("applications") or {}).items():
        deployments = {
            dep_name: DeploymentSnapshot(
                name=dep_name,
                status=str(dep.get("status", "UNKNOWN")),
                target_num_replicas=dep.get("target_num_replicas"),
                replica_states=dict(Counter(str(r.get("state")) for r in dep.get("replicas") or [])),
            )
            for dep_name, dep in (app.get("deployments") or {}).items()
        }
        apps[app_name] = AppSnapshot(
            name=app_name,
            status=str(app.get("status", "UNKNOWN")),
            deployed_app_config=app.get("deployed_app_config"),
            deployments=deployments,
        )
    capacity = payload.get("target_capacity")
    return ServeSnapshot(
        cluster=cluster,
        taken_at=taken_at,
        target_capacity=None if capacity is None else float(capacity),
        apps=apps,
    )


def _tls_context(conf: Any) -> ssl.SSLContext | bool:
    """TLS settings of a kubernetes client Configuration as one SSLContext.

    httpx ignores ``cert=`` when ``verify`` is a path, so CA and client certificate go in one context.
    """
    if not conf.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=conf.ssl_ca_cert) if conf.ssl_ca_cert else ssl.create_default_context()
    if conf.cert_file:
        context.load_cert_chain(conf.cert_file, conf.key_file)
    return context


def api_server_http(api_client: Any, timeout: float = 5.0) -> httpx.Client:
    """An httpx client to the API server with a ``kubernetes.client.ApiClient``'s host, TLS and token."""
    conf = api_client.configuration
    headers = {}
    token = (conf.api_key or {}).get("authorization") or (conf.api_key or {}).get("BearerToken")
    if token:
        headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    return httpx.Client(base_url=conf.host, headers=headers, verify=_tls_context(conf), timeout=timeout)


class ServeProbe:
    """Reads (and, for test drivers, writes) one cluster's Serve REST API."""

    def __init__(self, cluster: str, client: httpx.Client, path_prefix: str = "") -> None:
        self.cluster = cluster
        self._client = client
        self._url = path_prefix.rstrip("/") + SERVE_APPLICATIONS_PATH
        self._version_url = path_prefix.rstrip("/") + VERSION_PATH

    @classmethod
    def direct(cls, cluster: str, base_url: str, timeout: float = 5.0) -> ServeProbe:
        """Probe a dashboard reachable at ``base_url`` (``http://host:8265``)."""
        return cls(cluster, httpx.Client(base_url=base_url, timeout=timeout))

    @classmethod
    def via_api_server(
        cls,
        cluster: str,
        namespace: str,
        service: str,
        api_client: Any,
        port_name: str = "dashboard",
        timeout: float = 5.0,
    ) -> ServeProbe:
        """Probe through ``/api/v1/namespaces/NS/services/SVC:dashboard/proxy`` with the kubeconfig's creds.

        ``api_client`` is a ``kubernetes.client.ApiClient``; we reuse its
        host, CA, client certificate and token, never copying them to disk.
        """
        client = api_server_http(api_client, timeout)
        prefix = f"/api/v1/namespaces/{namespace}/services/{service}:{port_name}/proxy"
        return cls(cluster, client, prefix)

    def snapshot(self) -> ServeSnapshot:
        """One GET; any failure becomes a snapshot with ``error`` set."""
        taken_at = time.monotonic()
        try:
            response = self._client.get(self._url)
            if response.status_code != 200:
                body = response.text.strip().replace("\n", " ")[:200]
                return ServeSnapshot(self.cluster, taken_at, error=f"HTTP {response.status_code}: {body}")
            body = response.json()
            if not isinstance(body, dict):
                return ServeSnapshot(self.cluster, taken_at, error=f"unexpected body: {type(body).__name__}")
            return parse_applications(self.cluster, body, taken_at)
        except (httpx.HTTPError, ValueError, TypeError, AttributeError) as exc:
            return ServeSnapshot(self.cluster, taken_at, error=f"{type(exc).__name__}: {exc}")

    def ray_version(self) -> str | None:
        """The Ray version the cluster itself reports (its dashboard's ``/api/version``), or None if unreadable."""
        try:
            response = self._client.get(self._version_url)
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None
        version = body.get("ray_version") if isinstance(body, dict) else None
        return str(version) if version else None

    def put_config(self, config: dict[str, Any], timeout: float = 60.0) -> None:
        """Validate with Ray's ServeDeploySchema, then PUT; raise with Serve's own message on rejection."""
        body = validate_serve_config(config)
        response = self._client.put(self._url, json=body, timeout=timeout)
        if response.status_code != 200:
            raise RuntimeError(
                f"PUT {self._url} on {self.cluster} answered {response.status_code}: {response.text[:500]}"
            )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ServeProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
