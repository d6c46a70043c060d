"""The Serve apps we ship (``fixtures/serve_apps``) and the Serve configs that deploy them.

Apps are never downloaded at run time: on Kubernetes they are mounted from a
ConfigMap and referenced as ``local://`` working dirs; on a bare Ray cluster
the same directory is used in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_kuberay.workloads.serve_config import validate_serve_config

__all__ = ["SERVE_APPS_DIR", "echo_serve_config", "echo_version"]

SERVE_APPS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "serve_apps"


def echo_serve_config(
    version: str,
    working_dir: str | Path = SERVE_APPS_DIR / "echo",
    num_replicas: int = 2,
    replica_cpus: float = 0.1,
) -> dict[str, Any]:
    """A Serve config for the echo app answering ``version``; small CPU asks so rolling updates never deadlock."""
    config = {
        "applications": [
            {
                "name": "echo",
                "route_prefix": "/",
                "import_path": "echo:app",
                "runtime_env": {"working_dir": f"local://{working_dir}"},
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
