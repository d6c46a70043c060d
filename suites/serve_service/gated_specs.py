"""The two specs the #5148 test applies to the echo RayService, as plain functions of its manifest.

Kept out of the test module so unit tests can check them without a cluster. The first starts an
incremental upgrade whose new cluster runs the echo app with its Gate (``echo:gated_app``, the
Gate holding nothing). The second changes nothing a RayCluster is built from, only the traffic
interval and the Gate's hold: the operator keeps its pending cluster and pushes it the new config.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

#: The worker env var the upgrade adds: a change of the cluster spec, so the operator makes a new cluster.
UPGRADE_ENV = {"name": "PYTEST_KUBERAY_UPGRADE", "value": "serve-service"}
#: The echo app with a Gate beside Echo (fixtures/serve_apps/echo/echo.py).
GATED_IMPORT_PATH = "echo:gated_app"
ECHO, GATE = "Echo", "Gate"
#: The Gate's user_config key: how long it takes to apply a new config, its app DEPLOYING meanwhile.
HOLD_KEY = "hold_seconds"


def _serve_config(manifest: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    return config


def _deployment(app_config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((d for d in app_config.get("deployments") or [] if d.get("name") == name), None)


def gated_upgrade(deletion_delay_seconds: int, version: str = "v2") -> Callable[[dict[str, Any]], None]:
    """The upgrade, as an edit for ``upgrade(to=...)``: a new worker env var and the gated echo app.

    Echo answers ``version``; the Gate holds nothing yet. The old cluster is deleted
    ``deletion_delay_seconds`` after promotion.
    """
    def gated_echo_upgrade(manifest: dict[str, Any]) -> None:
        spec = manifest["spec"]
        spec["rayClusterDeletionDelaySeconds"] = deletion_delay_seconds
        for group in spec["rayClusterConfig"]["workerGroupSpecs"]:
            for container in group["template"]["spec"]["containers"]:
                container.setdefault("env", []).append(dict(UPGRADE_ENV))
        config = _serve_config(manifest)
        [app] = config["applications"]
        app["import_path"] = GATED_IMPORT_PATH
        echo = _deployment(app, ECHO)
        if echo is None:
            raise ValueError(f"the echo app has no {ECHO} deployment to answer {version!r}")
        echo["user_config"] = {"version": version}
        app["deployments"].append({"name": GATE, "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1},
                                   "user_config": {HOLD_KEY: 0}})
        spec["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)

    return gated_echo_upgrade


def released(manifest: dict[str, Any], hold_seconds: int, interval_seconds: int = 1) -> dict[str, Any]:
    """A copy of the upgrade's spec in which traffic may move again and the Gate holds ``hold_seconds``.

    Applied as one spec, so the operator sees both changes in the same reconcile.
    """
    changed = copy.deepcopy(manifest)
    changed["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]["intervalSeconds"] = interval_seconds
    config = _serve_config(changed)
    [app] = config["applications"]
    gate = _deployment(app, GATE)
    if gate is None:
        raise ValueError(f"the manifest's echo app has no {GATE}: apply gated_upgrade first")
    gate["user_config"] = {HOLD_KEY: hold_seconds}
    changed["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)
    return changed


def gate_hold(app_config: dict[str, Any] | None) -> float | None:
    """The Gate's hold in a deployed app config (as Serve reports it), or None without a Gate."""
    gate = _deployment(app_config or {}, GATE)
    if gate is None:
        return None
    return float((gate.get("user_config") or {}).get(HOLD_KEY, 0))
