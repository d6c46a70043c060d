"""Serve configs are checked with Ray's own ServeDeploySchema (ray[serve] is installed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pytest_kuberay.errors import ServeConfigError
from pytest_kuberay.workloads.serve_apps import SERVE_APPS_DIR, echo_serve_config
from pytest_kuberay.workloads.serve_config import app_configs, validate_serve_config


@pytest.fixture(scope="module")
def echo_v1() -> dict[str, Any]:
    return echo_serve_config("v1")


def test_echo_config_validates_and_is_returned_unchanged(echo_v1: dict[str, Any]) -> None:
    copied = copy.deepcopy(echo_v1)
    assert validate_serve_config(copied) is copied
    assert copied == echo_v1
    deployment = echo_v1["applications"][0]["deployments"][0]
    assert deployment["user_config"] == {"version": "v1"}
    assert echo_v1["applications"][0]["runtime_env"]["working_dir"] == f"local://{SERVE_APPS_DIR / 'echo'}"


def test_apps_travel_as_a_stable_zip_with_one_top_level_directory() -> None:
    import base64
    import io
    import zipfile

    from pytest_kuberay.workloads.rayservice import app_working_dir, serve_app_configmap

    first, second = serve_app_configmap("echo", "ns"), serve_app_configmap("echo", "ns")
    assert first == second, "the same app must give the same bytes (no spurious ConfigMap change)"
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(first["binaryData"]["echo.zip"])))
    assert archive.namelist() == ["echo/echo.py"]
    assert archive.read("echo/echo.py") == (SERVE_APPS_DIR / "echo" / "echo.py").read_bytes()
    assert app_working_dir("echo") == "file:///home/ray/apps/echo/echo.zip"


def test_app_configs_are_keyed_by_name(echo_v1: dict[str, Any]) -> None:
    assert app_configs(echo_v1) == {"echo": echo_v1["applications"][0]}
    assert app_configs({}) == {}


def _broken(echo_v1: dict[str, Any], **deployment: Any) -> dict[str, Any]:
    config = copy.deepcopy(echo_v1)
    config["applications"][0]["deployments"][0].update(deployment)
    return config


def test_bad_num_replicas_is_named(echo_v1: dict[str, Any]) -> None:
    with pytest.raises(ServeConfigError) as excinfo:
        validate_serve_config(_broken(echo_v1, num_replicas="many"))
    message = str(excinfo.value)
    assert message.startswith("invalid Serve config (1 problem(s)): applications.0.deployments.0")
    assert "num_replicas" in message
    assert "many" in message
    assert "https://docs.ray.io/en/latest/serve/production-guide/config.html" in message


def test_deployment_without_name_is_named(echo_v1: dict[str, Any]) -> None:
    config = copy.deepcopy(echo_v1)
    del config["applications"][0]["deployments"][0]["name"]
    with pytest.raises(ServeConfigError, match=r"applications\.0\.deployments\.0\.name: Field required"):
        validate_serve_config(config)


def test_several_problems_are_counted(echo_v1: dict[str, Any]) -> None:
    config = copy.deepcopy(echo_v1)
    del config["applications"][0]["import_path"]
    del config["applications"][0]["deployments"][0]["name"]
    with pytest.raises(ServeConfigError, match=r"\(2 problem\(s\)\)") as excinfo:
        validate_serve_config(config)
    assert "applications.0.import_path" in str(excinfo.value)


def test_echo_serve_config_rejects_bad_arguments() -> None:
    with pytest.raises(ServeConfigError, match="num_replicas"):
        echo_serve_config("v1", num_replicas=-1)
