"""The kind provider's pure parts: prerequisites and their messages, the kind config, Helm values, images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.helm import (
    INCREMENTAL_UPGRADE_GATE,
    KUBERAY_VALUES_FILE,
    feature_gate_problems,
    kuberay_values,
    merge_feature_gates,
)
from pytest_kuberay.install.istio import (
    istio_install_argv,
    istio_service_name,
    parse_forwarded_port,
)
from pytest_kuberay.install.kuberay import runs_out_of_cluster
from pytest_kuberay.install.traefik_helm import TRAEFIK_NODE_PORT, traefik_values
from pytest_kuberay.settings import default_settings
from pytest_kuberay.stacks.kind import (
    ProviderUnavailable,
    check_prerequisites,
    gateway_host_port,
    images_to_preload,
    kind_binary,
    kind_config_problems,
    kind_options,
    node_image,
    render_kind_config,
)
from pytest_kuberay.versions import parse_version, parse_version_list


def _which(*present: str) -> Any:
    return lambda name: f"/usr/bin/{name}" if name in present else None


# --------------------------------------------------------------------------------------------
# What is missing, said exactly
# --------------------------------------------------------------------------------------------


def test_no_docker_engine_is_reported_first() -> None:
    with pytest.raises(ProviderUnavailable) as err:
        check_prerequisites(default_settings(), docker_answers=lambda: False, which=_which())
    assert str(err.value).startswith("no Docker engine: kind provider unavailable")


def test_no_kind_binary() -> None:
    with pytest.raises(ProviderUnavailable) as err:
        check_prerequisites(default_settings(), docker_answers=lambda: True, which=_which("istioctl", "helm"))
    assert "kind not found on PATH" in str(err.value) and "--kind-bin" in str(err.value)  # what, and what to do


def test_kind_bin_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailable, match=r"--kind-bin .*/nope: no such file"):
        kind_binary(str(tmp_path / "nope"), which=_which("kind"))


def test_kind_bin_wins_over_path(tmp_path: Path) -> None:
    binary = tmp_path / "kind"
    binary.write_text("")
    assert kind_binary(str(binary), which=_which("kind")) == str(binary)
    assert kind_binary(None, which=_which("kind")) == "/usr/bin/kind"


def test_istio_needs_istioctl() -> None:
    with pytest.raises(ProviderUnavailable) as err:
        check_prerequisites(default_settings(), docker_answers=lambda: True, which=_which("kind", "helm"))
    assert "istioctl" in str(err.value) and "--kuberay-gateway-class=traefik" in str(err.value)


def test_istio_needs_kubectl_for_its_port_forwards() -> None:
    with pytest.raises(ProviderUnavailable) as err:
        check_prerequisites(default_settings(), docker_answers=lambda: True, which=_which("kind", "istioctl", "helm"))
    assert "kubectl" in str(err.value) and "istioctl" not in str(err.value).split(":")[0]


def test_traefik_needs_helm_even_with_a_source_checkout(tmp_path: Path) -> None:
    settings = default_settings(gateway_class="traefik", source=tmp_path)
    with pytest.raises(ProviderUnavailable) as err:
        check_prerequisites(settings, docker_answers=lambda: True, which=_which("kind", "istioctl"))
    assert str(err.value).startswith("helm not found on PATH") and "Traefik" in str(err.value)


def test_helm_is_not_needed_when_every_operator_runs_from_source(tmp_path: Path) -> None:
    settings = default_settings(source=tmp_path)
    tools = _which("kind", "istioctl", "kubectl")
    assert check_prerequisites(settings, docker_answers=lambda: True, which=tools) == "/usr/bin/kind"
    patched = default_settings(versions=parse_version_list("v1.5.0+pr4212"))
    assert check_prerequisites(patched, docker_answers=lambda: True, which=tools)


def test_helm_is_needed_for_releases() -> None:
    with pytest.raises(ProviderUnavailable, match="helm not found on PATH"):
        check_prerequisites(default_settings(), docker_answers=lambda: True,
                            which=_which("kind", "istioctl", "kubectl"))


def test_only_the_installed_gateway_classes_are_accepted_on_kind() -> None:
    with pytest.raises(ProviderError, match="on kind the GatewayClass is one of istio, traefik") as err:
        check_prerequisites(default_settings(gateway_class="nginx"), docker_answers=lambda: True,
                            which=_which("kind", "istioctl", "helm"))
    assert not isinstance(err.value, ProviderUnavailable)  # a usage error fails; only missing tools skip


def test_skip_message_through_the_fixture(pytester: pytest.Pytester) -> None:
    """With --kuberay-provider=kind and no Docker engine here, a suite test skips with the exact reason."""
    from pytest_kuberay.providers.select import docker_engine_answers

    if docker_engine_answers():
        pytest.skip("a Docker engine answers here: the kind provider would really start")
    pytester.makepyfile("def test_needs_cluster(kuberay_cluster):\n    pass\n")
    result = pytester.runpytest("--kuberay-provider=kind", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no Docker engine: kind provider unavailable*"])


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def test_node_image_precedence() -> None:
    env = {"PYTEST_KUBERAY_KIND_IMAGE": "kindest/node:v1.33.1"}
    assert node_image("kindest/node:v1.34.0", env) == "kindest/node:v1.34.0"
    assert node_image(None, env) == "kindest/node:v1.33.1"
    assert node_image(None, {}) is None


def test_gateway_host_port() -> None:
    assert gateway_host_port({}) == 30080
    assert gateway_host_port({"PYTEST_KUBERAY_KIND_GATEWAY_PORT": "18080"}) == 18080
    with pytest.raises(ProviderError, match="is not a TCP port"):
        gateway_host_port({"PYTEST_KUBERAY_KIND_GATEWAY_PORT": "http"})


def test_kind_options_read_pytest_kind_ng_flags() -> None:
    class Config:
        def getoption(self, name: str, default: Any = None) -> Any:
            return {"kind_bin": "/opt/kind", "kind_image": None}.get(name, default)

    assert kind_options(Config()) == {"kind_bin": "/opt/kind", "kind_image": None}


def test_images_to_preload() -> None:
    settings = default_settings(versions=parse_version_list("v1.5.0,v1.5.1,v1.5.0+pr4212,v1.7.0"))
    assert images_to_preload(settings) == [
        "rayproject/ray:2.46.0", "quay.io/kuberay/operator:v1.5.0", "quay.io/kuberay/operator:v1.5.1",
        "rayproject/ray:2.55.0", "quay.io/kuberay/operator:v1.7.0"]
    custom = default_settings(versions=parse_version_list("v1.5.1"), ray_image="my/ray:1.0")
    assert images_to_preload(custom) == ["my/ray:1.0", "quay.io/kuberay/operator:v1.5.1"]


def test_runs_out_of_cluster(tmp_path: Path) -> None:
    assert not runs_out_of_cluster(parse_version("v1.5.1"), None)
    assert runs_out_of_cluster(parse_version("v1.5.0+pr4212"), None)
    assert runs_out_of_cluster(parse_version("v1.5.1"), tmp_path)


# --------------------------------------------------------------------------------------------
# The kind config
# --------------------------------------------------------------------------------------------


def test_kind_config_rendering() -> None:
    config = render_kind_config()
    assert kind_config_problems(config) == []
    assert config["nodes"][0]["extraPortMappings"] == [
        {"containerPort": TRAEFIK_NODE_PORT, "hostPort": 30080, "listenAddress": "127.0.0.1", "protocol": "TCP"}]
    moved = render_kind_config(18080)
    assert moved["nodes"][0]["extraPortMappings"][0]["hostPort"] == 18080
    assert moved["nodes"][0]["extraPortMappings"][0]["containerPort"] == TRAEFIK_NODE_PORT


@pytest.mark.parametrize(("change", "problem"), [
    (lambda c: c.update(kind="Clusterr"), "kind must be Cluster"),
    (lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3"), "apiVersion must be kind.x-k8s.io/v1alpha4"),
    (lambda c: c.update(node=[]), "unknown top-level fields ['node']"),
    (lambda c: c["nodes"][0].update(role="master"), "role must be control-plane or worker"),
    (lambda c: c["nodes"][0]["extraPortMappings"][0].update(hostPort="80"), "hostPort must be a port number"),
    (lambda c: c["nodes"][0]["extraPortMappings"][0].update(hostport=80), "unknown fields ['hostport']"),
    (lambda c: c["nodes"][0]["extraPortMappings"][0].update(protocol="tcp"), "protocol must be TCP, UDP or SCTP"),
    (lambda c: c.update(nodes=[]), "nodes must be a non-empty list"),
])
def test_kind_config_problems(change: Any, problem: str) -> None:
    config = render_kind_config()
    change(config)
    problems = kind_config_problems(config)
    assert any(problem in p for p in problems), problems


# --------------------------------------------------------------------------------------------
# Helm values
# --------------------------------------------------------------------------------------------

V150_DEFAULTS = [{"name": "RayClusterStatusConditions", "enabled": True},
                 {"name": "RayJobDeletionPolicy", "enabled": False},
                 {"name": "RayServiceIncrementalUpgrade", "enabled": False}]


def test_values_file_has_the_documented_feature_gate_shape() -> None:
    values = yaml.safe_load(KUBERAY_VALUES_FILE.read_text())
    assert feature_gate_problems(values) == []
    assert values["featureGates"] == [{"name": INCREMENTAL_UPGRADE_GATE, "enabled": True}]
    assert values["image"]["pullPolicy"] == "IfNotPresent"  # preloaded images are used


def test_kuberay_values_per_version_keep_the_chart_defaults() -> None:
    values = kuberay_values(parse_version("v1.5.0"), {"featureGates": V150_DEFAULTS})
    assert values["image"]["tag"] == "v1.5.0"
    assert values["featureGates"] == [{"name": "RayClusterStatusConditions", "enabled": True},
                                      {"name": "RayJobDeletionPolicy", "enabled": False},
                                      {"name": INCREMENTAL_UPGRADE_GATE, "enabled": True}]
    assert kuberay_values(parse_version("v1.6.2"))["featureGates"] == [
        {"name": INCREMENTAL_UPGRADE_GATE, "enabled": True}]


def test_merge_feature_gates_appends_unknown_gates() -> None:
    merged = merge_feature_gates([{"name": "A", "enabled": True}], [{"name": "B", "enabled": True}])
    assert merged == [{"name": "A", "enabled": True}, {"name": "B", "enabled": True}]


@pytest.mark.parametrize(("gates", "problem"), [
    ({"RayServiceIncrementalUpgrade": True}, "featureGates must be a list"),
    ([{"name": INCREMENTAL_UPGRADE_GATE, "enabled": "true"}], "enabled must be true or false"),
    ([{"enabled": True}], "name must be a non-empty string"),
    ([{"name": INCREMENTAL_UPGRADE_GATE, "enabled": True, "default": True}], "unknown keys ['default']"),
    (["RayServiceIncrementalUpgrade=true"], "must be a mapping"),
])
def test_feature_gate_problems(gates: Any, problem: str) -> None:
    problems = feature_gate_problems({"featureGates": gates})
    assert any(problem in p for p in problems), problems


def test_invalid_values_stop_the_install() -> None:
    with pytest.raises(ProviderError, match=r"KubeRay Helm values for v1.5.0 are invalid: featureGates\[0\]"):
        kuberay_values(parse_version("v1.5.0"), base={"featureGates": [{"name": "X", "enabled": "yes"}]})


def test_traefik_values_match_kuberay_gateways_and_the_kind_config() -> None:
    """KubeRay's listener is port 80: Traefik's entryPoint must be 80 too, and published where kind maps it."""
    values = traefik_values()
    assert values["providers"]["kubernetesGateway"]["enabled"] is True
    assert values["ports"]["web"]["port"] == 80
    assert values["ports"]["web"]["nodePort"] == TRAEFIK_NODE_PORT
    assert values["service"]["type"] == "NodePort"
    assert values["gateway"]["enabled"] is False and values["gatewayClass"]["enabled"] is False
    assert {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"} in values["podSecurityContext"]["sysctls"]
    mapping = render_kind_config()["nodes"][0]["extraPortMappings"][0]
    assert mapping["containerPort"] == values["ports"]["web"]["nodePort"]


# --------------------------------------------------------------------------------------------
# Istio helpers
# --------------------------------------------------------------------------------------------


def test_istio_install_is_the_upstream_ci_command() -> None:
    argv = istio_install_argv("/usr/bin/istioctl", Path("/k/config"), "kind-pytest-kuberay")
    assert argv == ["/usr/bin/istioctl", "install", "--set", "profile=minimal", "-y", "--kubeconfig", "/k/config",
                    "--context", "kind-pytest-kuberay"]


def test_istio_service_and_port_forward_output() -> None:
    assert istio_service_name("echo-gateway") == "echo-gateway-istio"
    assert parse_forwarded_port("Forwarding from 127.0.0.1:41234 -> 80\nHandling connection") == 41234
    assert parse_forwarded_port("error: unable to forward") is None
