"""The existing provider against a real API server: it refuses conflicts with one line each.

A local cluster (no KubeRay) plays "the user's cluster". What the provider inspects are
real objects on it: operator Deployments with other versions or flags, GatewayClasses
nobody accepts. The end-to-end repro through this provider runs in
``test_existing_provider_repro.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.settings import default_settings
from pytest_kuberay.versions import parse_version
from tests.support.local_provider import NEEDS_LOCAL_PROVIDER

pytestmark = NEEDS_LOCAL_PROVIDER

V151 = parse_version("v1.5.1")


@pytest.fixture(scope="module")
def user_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real cluster with Gateway API and Traefik but no KubeRay, as `pytest-kuberay cluster up` makes it."""
    from pytest_kuberay.stacks.local import local_stack

    settings = default_settings(artifacts_dir=tmp_path_factory.mktemp("user-cluster"), versions=())
    with local_stack(settings) as stack:
        yield stack


def _existing(user_cluster: Any, tmp_path: Path, **overrides: Any) -> Any:
    from pytest_kuberay.stacks.existing import existing_stack

    settings = default_settings(provider="existing", kubeconfig=user_cluster.handle.kubeconfig,
                                artifacts_dir=tmp_path, versions=(V151,), **overrides)
    return existing_stack(settings)


def _operator_deployment(name: str, namespace: str, image: str, args: list[str]) -> dict[str, Any]:
    """An operator Deployment as someone else would have installed it (it need not run: it is inspected)."""
    labels = {"app.kubernetes.io/name": "kuberay-operator"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "op", "image": image, "args": args}]}}}}


@pytest.fixture
def someones_operator(user_cluster: Any) -> Iterator[Any]:
    """Installs one operator Deployment in a namespace of 'someone else', removed afterwards."""
    handle = user_cluster.handle
    handle.core.create_namespace({"metadata": {"name": "their-kuberay"}})
    created: list[str] = []

    def install(image: str, *args: str) -> None:
        name = f"kuberay-operator-{len(created)}"
        apply_manifests(handle.dynamic, [_operator_deployment(name, "their-kuberay", image, list(args))])
        created.append(name)

    yield install
    handle.core.delete_namespace("their-kuberay")
    # The next test creates it again: wait until the namespace controller has finished deleting it.
    wait_for(lambda: [ns.metadata.name for ns in handle.core.list_namespace().items],
             lambda names: "their-kuberay" not in names, timeout=120, description="namespace their-kuberay deleted")


def _refusal(user_cluster: Any, tmp_path: Path, **overrides: Any) -> str:
    with pytest.raises(ProviderError) as err, _existing(user_cluster, tmp_path, **overrides) as stack:
        stack.install_kuberay(V151)
    return str(err.value)


def test_another_kuberay_version_is_refused(user_cluster: Any, someones_operator: Any, tmp_path: Path) -> None:
    someones_operator("quay.io/kuberay/operator:v1.5.0", "--feature-gates=RayServiceIncrementalUpgrade=true")
    message = _refusal(user_cluster, tmp_path)
    assert "KubeRay v1.5.0 is installed (Deployment their-kuberay/kuberay-operator-0" in message
    assert "but v1.5.1 was asked for: run with --kuberay-version=v1.5.0" in message


def test_the_gate_off_is_refused(user_cluster: Any, someones_operator: Any, tmp_path: Path) -> None:
    someones_operator("quay.io/kuberay/operator:v1.5.1", "--feature-gates=RayClusterStatusConditions=true")
    message = _refusal(user_cluster, tmp_path)
    assert "feature gate RayServiceIncrementalUpgrade is off in Deployment their-kuberay/kuberay-operator-0" in message
    assert "not set (off by default before v1.7.0)" in message


def test_a_namespace_scoped_operator_is_refused(user_cluster: Any, someones_operator: Any, tmp_path: Path) -> None:
    someones_operator("quay.io/kuberay/operator:v1.5.1", "--feature-gates=RayServiceIncrementalUpgrade=true",
                      "--watch-namespace=team-a")
    message = _refusal(user_cluster, tmp_path)
    assert "watches only namespaces team-a" in message


def test_a_missing_gateway_class_is_refused(user_cluster: Any, tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as err, _existing(user_cluster, tmp_path, gateway_class="nope"):
        pass
    assert "GatewayClass nope" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_a_gateway_class_nobody_accepts_is_refused(user_cluster: Any, tmp_path: Path) -> None:
    handle = user_cluster.handle
    apply_manifests(handle.dynamic, [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                                      "metadata": {"name": "orphan"},
                                      "spec": {"controllerName": "example.com/no-such-controller"}}])
    try:
        with pytest.raises(ProviderError) as err, _existing(user_cluster, tmp_path, gateway_class="orphan"):
            pass
        assert "GatewayClass orphan" in str(err.value) and "Accepted" in str(err.value)
    finally:
        handle.custom.delete_cluster_custom_object("gateway.networking.k8s.io", "v1", "gatewayclasses", "orphan")
