"""The node agent's container environment and resource quantities (pure functions, no cluster)."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from pytest_kuberay.providers.local.node_agent.env import (
    ConfigError,
    command_line,
    container_env,
    expand,
    field_value,
    resource_value,
)
from pytest_kuberay.providers.local.node_agent.quantity import format_resource, parse_quantity

JSON = dict[str, Any]


class FakeObjects:
    """ConfigMaps and Secrets from dicts."""

    def __init__(self, configmaps: dict[str, JSON] | None = None, secrets: dict[str, JSON] | None = None) -> None:
        self.configmaps = configmaps or {}
        self.secrets = secrets or {}

    def configmap(self, namespace: str, name: str) -> JSON | None:
        return self.configmaps.get(f"{namespace}/{name}")

    def secret(self, namespace: str, name: str) -> JSON | None:
        return self.secrets.get(f"{namespace}/{name}")


def _pod(container: JSON) -> JSON:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"ray.io/cluster": "rc", "b": "2"}},
        "spec": {"nodeName": "local-node", "serviceAccountName": "sa", "containers": [container]},
        "status": {"podIP": "10.244.0.10", "podIPs": [{"ip": "10.244.0.10"}], "hostIP": "10.244.0.1"},
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("2", "2"), ("1Gi", str(2**30)), ("2G", "2000000000"), ("1e3", "1000"), ("100Ki", "102400")],
)
def test_parse_quantity(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


def test_parse_quantity_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("lots")


def test_format_resource_rounds_up_after_the_divisor() -> None:
    assert format_resource(Decimal("0.5"), None) == "1"
    assert format_resource(Decimal(2**31), "1Mi") == "2048"
    assert format_resource(Decimal("1.5"), "1m") == "1500"


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)-$(B)", "a-$(B)"),
        ("$$(A)", "$(A)"),
        ("cost $5", "cost $5"),
        ("$(A", "$(A"),
        ("tail$", "tail$"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expanded: str) -> None:
    assert expand(text, {"A": "a"}) == expanded


def test_field_values() -> None:
    pod = _pod({"name": "c"})
    assert field_value(pod, "metadata.labels['ray.io/cluster']") == "rc"
    assert field_value(pod, "metadata.labels") == 'b="2"\nray.io/cluster="rc"'
    assert field_value(pod, "status.podIP") == "10.244.0.10"
    assert field_value(pod, "spec.serviceAccountName") == "sa"
    with pytest.raises(ConfigError, match="unsupported"):
        field_value(pod, "spec.containers")


def test_resource_values_default_to_the_nodes_allocatable() -> None:
    container = {"name": "c", "resources": {"limits": {"cpu": "1500m"}, "requests": {"memory": "1Gi"}}}
    pod = _pod(container)
    allocatable = {"cpu": "64", "memory": "256Gi"}
    assert resource_value(pod, {"resource": "limits.cpu"}, allocatable, "c") == "2"
    assert resource_value(pod, {"resource": "limits.memory", "divisor": "1Gi"}, allocatable, "c") == "256"
    assert resource_value(pod, {"resource": "requests.memory", "divisor": "1Mi"}, allocatable, "c") == "1024"
    assert resource_value(pod, {"resource": "requests.cpu", "divisor": "1m"}, allocatable, "c") == "1500"


def test_container_env_precedence_sources_and_expansion() -> None:
    objects = FakeObjects(
        configmaps={"ns/cfg": {"data": {"MODE": "fast", "bad key": "x"}}},
        secrets={"ns/creds": {"data": {"token": base64.b64encode(b"s3cret").decode()}}},
    )
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [
            {"name": "PATH", "value": "/custom"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "value": "http://$(IP):$(KUBERNETES_SERVICE_PORT)/$(CFG_MODE)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        ],
        "command": ["echo", "$(URL)"],
        "args": ["$(TOKEN)", "$$(TOKEN)"],
    }
    env = container_env(
        _pod(container),
        container,
        base={"PATH": "/usr/bin", "HOME": "/root"},
        service_env={"KUBERNETES_SERVICE_PORT": "6443"},
        objects=objects,
        allocatable={},
    )
    assert env["PATH"] == "/custom"  # the container's env beats the image's
    assert env["HOME"] == "/root"
    assert env["CFG_MODE"] == "fast"
    assert "CFG_bad key" not in env
    assert env["URL"] == "http://10.244.0.10:6443/fast"
    assert env["TOKEN"] == "s3cret"
    assert "MISSING" not in env
    assert command_line(container, env) == ["echo", "http://10.244.0.10:6443/fast", "s3cret", "$(TOKEN)"]


def test_missing_keys_are_config_errors() -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}
    with pytest.raises(ConfigError, match='ConfigMap "cfg" not found'):
        container_env(_pod(container), container, base={}, service_env={}, objects=FakeObjects(), allocatable={})
    objects = FakeObjects(configmaps={"ns/cfg": {"data": {}}})
    with pytest.raises(ConfigError, match="couldn't find key k"):
        container_env(_pod(container), container, base={}, service_env={}, objects=objects, allocatable={})


def test_a_container_without_command_cannot_run_an_image_entrypoint() -> None:
    with pytest.raises(ConfigError, match="has no command"):
        command_line({"name": "c"}, {})
    assert command_line({"name": "c", "args": ["python3", "-V"]}, {}) == ["python3", "-V"]
