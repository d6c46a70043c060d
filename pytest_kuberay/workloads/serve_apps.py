"""The Serve apps we ship (``fixtures/serve_apps``) and the Serve configs that deploy them.

Apps are never downloaded at run time. On Kubernetes each app travels as a zip in a
ConfigMap, mounted into every Ray pod and referenced as a ``file://`` working_dir: Serve
configs accept only URIs of zip packages there (Ray 2.46 rejects ``local://``), and a
zip is what a real deployment would point at too. On a bare Ray cluster next to pytest
the directory is used in place (``local://``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.workloads.serve_config import validate_serve_config

__all__ = ["SERVE_APPS_DIR", "app_zip", "echo_serve_config", "echo_version"]

SERVE_APPS_DIR = data_dir("serve_apps")


def app_zip(app_dir: Path) -> bytes:
    """The app's files as a zip under one top-level directory, byte-for-byte the same on every call.

    Fixed timestamps and sorted entries keep the bytes (and so the ConfigMap) stable, so
    re-applying a manifest never looks like a change.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in app_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = zipfile.ZipInfo(f"{app_dir.name}/{path.relative_to(app_dir).as_posix()}", (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def echo_serve_config(
    version: str,
    working_dir: str = f"local://{SERVE_APPS_DIR / 'echo'}",
    num_replicas: int = 2,
    replica_cpus: float = 0.1,
) -> dict[str, Any]:
    """A Serve config for the echo app answering ``version``; small CPU asks so rolling updates never deadlock.

    ``working_dir`` is a runtime_env URI: ``local://<dir>`` next to pytest, ``file://<zip>`` in a pod.
    """
    config = {
        "applications": [
            {
                "name": "echo",
                "route_prefix": "/",
                "import_path": "echo:app",
                "runtime_env": {"working_dir": working_dir},
                "deployments": [
                    {
                        "name": "Echo",
                        "num_replicas": num_replicas,
                        "ray_actor_options": {"num_cpus": replica_cpus},
                        "user_config": {"version": version},
                    }
                ],
            }
        ]
    }
    return validate_serve_config(config)


def echo_version(app_config: dict[str, Any]) -> str:
    """The version an echo app config answers with (its first deployment's ``user_config.version``)."""
    deployments = app_config.get("deployments") or [{}]
    return str((deployments[0].get("user_config") or {}).get("version"))
