"""A small JSON client for the Kubernetes API, built on httpx and a kubeconfig.

The agent speaks plain JSON (camelCase dicts, exactly as in the API reference) rather than
the generated ``kubernetes`` client: pod specs are read field by field and statuses are sent
as strategic-merge patches, which dicts express directly, and the agent process stays small
and quick to start. Each thread gets its own connection pool, so the watches, the node
heartbeat and the pod workers never wait on each other.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["ApiError", "KubeClient", "KubeCredentials"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server, with its status code and Status message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            message = body
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.message = str(message)


@dataclass(frozen=True)
class KubeCredentials:
    """What is needed to reach the API server: URL, CA file, and a client cert or a bearer token."""

    server: str
    ca_file: Path | None
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """TLS settings: our CA, and the client certificate when there is one (httpx 0.28 wants a context)."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file and self.key_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, secrets_dir: Path) -> KubeCredentials:
        """Read the current context of ``kubeconfig``; embedded certs are written to ``secrets_dir`` (0600)."""
        config = yaml.safe_load(kubeconfig.read_text())
        current = config.get("current-context")
        contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
        context = contexts[current] if current in contexts else next(iter(contexts.values()))
        cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
        user = {u["name"]: u.get("user", {}) for u in config.get("users", [])}.get(context.get("user"), {})
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

        def material(field: str, data_field: str, source: Mapping[str, Any], name: str) -> Path | None:
            if source.get(data_field):
                path = secrets_dir / name
                path.touch(mode=0o600)
                path.write_bytes(base64.b64decode(source[data_field]))
                return path
            if source.get(field):
                return Path(source[field])
            return None

        return cls(
            server=str(cluster["server"]).rstrip("/"),
            ca_file=material("certificate-authority", "certificate-authority-data", cluster, "ca.crt"),
            cert_file=material("client-certificate", "client-certificate-data", user, "client.crt"),
            key_file=material("client-key", "client-key-data", user, "client.key"),
            token=user.get("token"),
        )


class KubeClient:
    """GET/POST/PATCH/DELETE and watches on API paths, returning parsed JSON."""

    def __init__(self, credentials: KubeCredentials, *, timeout: float = 10.0) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            creds = self.credentials
            headers = {"Accept": "application/json", "User-Agent": "pytest-kuberay-node-agent"}
            if creds.token:
                headers["Authorization"] = f"Bearer {creds.token}"
            client = httpx.Client(
                base_url=creds.server,
                verify=creds.ssl_context(),
                headers=headers,
                timeout=self.timeout,
                trust_env=False,  # never send cluster traffic through an HTTP proxy from the environment
            )
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        """Close every thread's connections."""
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JSON:
        """One API call; raises ApiError on a non-2xx answer, httpx errors when unreachable."""
        content = None if body is None else json.dumps(body)
        reply = self._client().request(
            method,
            path,
            content=content,
            params=dict(params) if params else None,
            headers={"Content-Type": content_type} if content is not None else None,
            timeout=timeout if timeout is not None else self.timeout,
        )
        if reply.status_code >= 300:
            raise ApiError(method, path, reply.status_code, reply.text)
        return reply.json() if reply.content else {}

    def get(self, path: str, **params: Any) -> JSON:
        """GET ``path`` with query ``params``."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> JSON:
        """POST ``body`` to ``path``."""
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any, content_type: str = STRATEGIC_MERGE) -> JSON:
        """PATCH ``path`` (strategic merge by default, like the kubelet)."""
        return self.request("PATCH", path, body=body, content_type=content_type)

    def put(self, path: str, body: Any) -> JSON:
        """PUT ``body`` to ``path``."""
        return self.request("PUT", path, body=body)

    def delete(self, path: str, body: Any = None) -> JSON:
        """DELETE ``path`` with optional DeleteOptions."""
        return self.request("DELETE", path, body=body)

    def watch(
        self, path: str, resource_version: str, params: Mapping[str, str] | None = None, *, timeout_seconds: int = 300
    ) -> Iterator[JSON]:
        """Yield watch events (``{"type": ..., "object": ...}``) from ``resource_version`` until the server ends it."""
        query = {
            **(params or {}),
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = httpx.Timeout(self.timeout, read=timeout_seconds + 30)
        with self._client().stream("GET", path, params=query, timeout=timeout) as reply:
            if reply.status_code >= 300:
                raise ApiError("WATCH", path, reply.status_code, reply.read().decode(errors="replace"))
            for line in reply.iter_lines():
                if line.strip():
                    yield json.loads(line)
