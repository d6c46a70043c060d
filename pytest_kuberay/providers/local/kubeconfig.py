"""Kubeconfig files for the local cluster's clients, each with its own client certificate embedded."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

__all__ = ["CLUSTER_NAME", "write_kubeconfig"]

CLUSTER_NAME = "pytest-kuberay"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, *, server: str, ca_cert: Path, client_cert: Path, client_key: Path,
                     user: str) -> Path:
    """A kubeconfig (mode 0600) that can be copied anywhere: CA and client credentials are embedded."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME,
                      "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(client_cert),
                                          "client-key-data": _b64(client_key)}}],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
