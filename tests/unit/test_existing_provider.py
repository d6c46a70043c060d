"""The existing provider's decisions, from hand-written objects: what is installed, and what conflicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.stacks.existing import (
    ExistingOperator,
    check_reachable,
    gateway_address_url,
    inspect_operator,
    kubeconfig_path,
    minified_kubeconfig,
    operator_conflicts,
    parse_feature_gates,
    rayservice_crd_problems,
    resolve_gateway_class,
    version_from_image,
)
from pytest_kuberay.versions import parse_version


def deployment(image: str = "quay.io/kuberay/operator:v1.5.1", args: list[str] | None = None,
               labels: dict[str, str] | None = None, name: str = "kuberay-operator",
               namespace: str = "ray-system") -> dict[str, Any]:
    """A Deployment as the KubeRay chart renders it (API JSON, camelCase)."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
            "template": {"spec": {"containers": [{
                "name": "kuberay-operator", "image": image, "command": ["/manager"],
                "args": args if args is not None else [
                    "--feature-gates=RayClusterStatusConditions=true,RayServiceIncrementalUpgrade=true",
                    "--enable-leader-election=true"],
            }]}},
        },
    }


def installed(**kwargs: Any) -> Any:
    op = inspect_operator(deployment(**kwargs))
    assert op is not None
    return op


# --------------------------------------------------------------------------------------------
# Reading a Deployment
# --------------------------------------------------------------------------------------------


def test_inspect_chart_deployment() -> None:
    op = installed()
    assert (op.namespace, op.name, op.version) == ("ray-system", "kuberay-operator", "v1.5.1")
    assert op.gates == {"RayClusterStatusConditions": True, "RayServiceIncrementalUpgrade": True}
    assert op.gate_enabled() and op.watch_namespaces == ()
    assert op.selector == {"app.kubernetes.io/name": "kuberay-operator"}


#: The args chart 1.6.2 renders from our values (helm template of the real chart, merged featureGates).
CHART_162_ARGS = ["--log-stdout-encoder", "console", "--log-file-encoder", "json", "--enable-leader-election=true",
                  "--enable-metrics=true", "--reconcile-concurrency=1", "--qps=100", "--burst=200",
                  "--feature-gates=RayClusterStatusConditions=true,RayJobDeletionPolicy=true,RayMultiHostIndexing=true,"
                  "RayServiceIncrementalUpgrade=true,RayCronJob=false"]


def test_inspect_what_our_helm_values_render() -> None:
    op = installed(image="quay.io/kuberay/operator:v1.6.2", args=CHART_162_ARGS)
    assert op.gates["RayServiceIncrementalUpgrade"] is True and op.gates["RayCronJob"] is False
    assert operator_conflicts([op], parse_version("v1.6.2")) == []


def test_other_deployments_are_not_operators() -> None:
    assert inspect_operator(deployment(image="docker.io/istio/pilot:1.28.0", name="istiod")) is None


@pytest.mark.parametrize(("argv", "gates"), [
    (["--feature-gates", "A=true,B=false"], {"A": True, "B": False}),
    (["--feature-gates=A=true", "--feature-gates=A=false"], {"A": False}),
    (["--feature-gates=A=True, B=TRUE"], {"A": True, "B": True}),
    (["--log-stdout-encoder", "json"], {}),
])
def test_parse_feature_gates(argv: list[str], gates: dict[str, bool]) -> None:
    assert parse_feature_gates(argv) == gates


@pytest.mark.parametrize(("image", "version"), [
    ("quay.io/kuberay/operator:v1.5.0", "v1.5.0"),
    ("kuberay/operator:1.6.2", "v1.6.2"),
    ("localhost:5000/kuberay/operator:v1.7.0", "v1.7.0"),
    ("quay.io/kuberay/operator:nightly", None),
    ("quay.io/kuberay/operator@sha256:0123abcd", None),
    ("localhost:5000/kuberay/operator", None),
])
def test_version_from_image(image: str, version: str | None) -> None:
    assert version_from_image(image) == version


def test_version_from_the_chart_label_when_the_image_has_none() -> None:
    op = installed(image="quay.io/kuberay/operator@sha256:0123", labels={"helm.sh/chart": "kuberay-operator-1.6.2"})
    assert op.version == "v1.6.2"


# --------------------------------------------------------------------------------------------
# Conflicts
# --------------------------------------------------------------------------------------------


def test_a_matching_operator_has_no_conflict() -> None:
    assert operator_conflicts([installed()], parse_version("v1.5.1")) == []
    assert operator_conflicts([], parse_version("v1.5.0+pr4212")) == []  # nothing installed: we install


def test_other_version_is_refused() -> None:
    [problem] = operator_conflicts([installed()], parse_version("v1.5.0"))
    assert problem.startswith("KubeRay v1.5.1 is installed (Deployment ray-system/kuberay-operator")
    assert "but v1.5.0 was asked for: run with --kuberay-version=v1.5.1" in problem


def test_gate_off_is_refused() -> None:
    op = installed(args=["--feature-gates=RayClusterStatusConditions=true,RayServiceIncrementalUpgrade=false"])
    [problem] = operator_conflicts([op], parse_version("v1.5.1"))
    assert "feature gate RayServiceIncrementalUpgrade is off" in problem
    assert "(RayServiceIncrementalUpgrade=false)" in problem
    assert "featureGates: [{name: RayServiceIncrementalUpgrade, enabled: true}]" in problem


def test_gate_absent_follows_the_version_default() -> None:
    v162 = installed(image="quay.io/kuberay/operator:v1.6.2", args=[])
    [problem] = operator_conflicts([v162], parse_version("v1.6.2"))
    assert "is off" in problem and "not set (off by default before v1.7.0)" in problem
    v170 = installed(image="quay.io/kuberay/operator:v1.7.0", args=[])
    assert operator_conflicts([v170], parse_version("v1.7.0")) == []


def test_version_and_gate_conflicts_are_both_reported() -> None:
    op = installed(image="quay.io/kuberay/operator:v1.6.2", args=["--feature-gates=RayCronJob=true"])
    problems = operator_conflicts([op], parse_version("v1.5.1"))
    assert len(problems) == 2
    assert "KubeRay v1.6.2 is installed" in problems[0] and "is off" in problems[1]


def test_unknown_version_is_refused() -> None:
    op = installed(image="quay.io/kuberay/operator:nightly")
    [problem] = operator_conflicts([op], parse_version("v1.5.1"))
    assert "cannot tell the KubeRay version of Deployment ray-system/kuberay-operator" in problem


def test_watch_namespace_is_refused() -> None:
    op = installed(args=["--feature-gates=RayServiceIncrementalUpgrade=true", "--watch-namespace", "team-a,team-b"])
    [problem] = operator_conflicts([op], parse_version("v1.5.1"))
    assert "watches only namespaces team-a, team-b" in problem


def test_patched_or_source_build_next_to_an_installed_operator_is_refused(tmp_path: Path) -> None:
    [problem] = operator_conflicts([installed()], parse_version("v1.5.0+pr4212"))
    assert "v1.5.0+pr4212 (a patched build) runs an operator built from source" in problem
    [problem] = operator_conflicts([installed()], parse_version("v1.5.1"), source=tmp_path)
    assert f"--kuberay-source {tmp_path}" in problem


def test_two_operators_are_refused() -> None:
    problems = operator_conflicts([installed(), installed(namespace="other")], parse_version("v1.5.1"))
    assert problems[0].startswith("2 KubeRay operators are installed")


class _Follower:
    """Stands for the PodLogFollower of the found operator's pod."""

    path = Path("kuberay-operator.log")
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_found_operator_is_never_restarted_or_stopped() -> None:
    operator = ExistingOperator(installed())
    assert operator.restartable is False
    with pytest.raises(ProviderError, match="does not restart Deployment ray-system/kuberay-operator"):
        operator.restart()
    follower = _Follower()
    followed = ExistingOperator(installed(), follower)  # type: ignore[arg-type]
    assert followed.log_paths == [follower.path]
    followed.stop()  # stops following its log; it holds no API client, so it cannot touch the Deployment
    assert follower.stopped and followed.follower is None and followed.log_paths == []


# --------------------------------------------------------------------------------------------
# CRDs, GatewayClasses, Gateway addresses
# --------------------------------------------------------------------------------------------


def rayservice_crd(with_options: bool = True, served: bool = True) -> dict[str, Any]:
    strategy = {"type": {"type": "string"}}
    if with_options:
        strategy["clusterUpgradeOptions"] = {"type": "object"}
    schema = {"properties": {"spec": {"properties": {"upgradeStrategy": {"properties": strategy}}}}}
    return {"spec": {"versions": [{"name": "v1", "served": served, "schema": {"openAPIV3Schema": schema}}]}}


def test_rayservice_crd_problems() -> None:
    assert rayservice_crd_problems(rayservice_crd()) == []
    assert "predates KubeRay v1.5.0" in rayservice_crd_problems(rayservice_crd(with_options=False))[0]
    assert rayservice_crd_problems(rayservice_crd(served=False)) == ["the RayService CRD does not serve ray.io/v1"]
    assert "not installed" in rayservice_crd_problems(None)[0]


def gateway_class(name: str, accepted: bool = True, controller: str = "example.com/gw") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"controllerName": controller},
            "status": {"conditions": [{"type": "Accepted", "status": "True" if accepted else "Unknown"}]}}


def test_requested_gateway_class_must_exist_and_be_accepted() -> None:
    classes = [gateway_class("gke-l7-rilb", controller="networking.gke.io/gateway"), gateway_class("cilium", False)]
    assert resolve_gateway_class("gke-l7-rilb", classes) == "gke-l7-rilb"
    with pytest.raises(ProviderError) as err:
        resolve_gateway_class("istio", classes)
    message = str(err.value)
    assert message.startswith("GatewayClass istio does not exist on this cluster (GatewayClasses: cilium ")
    assert "gke-l7-rilb (networking.gke.io/gateway)" in message
    assert "does not install a gateway controller into an existing cluster" in message
    with pytest.raises(ProviderError, match="GatewayClass cilium exists but its controller has not Accepted it"):
        resolve_gateway_class("cilium", classes)


def test_default_gateway_class() -> None:
    assert resolve_gateway_class(None, [gateway_class("istio"), gateway_class("other")]) == "istio"
    assert resolve_gateway_class(None, [gateway_class("only"), gateway_class("off", False)]) == "only"
    with pytest.raises(ProviderError, match="pass --kuberay-gateway-class=<one of them>"):
        resolve_gateway_class(None, [gateway_class("a"), gateway_class("b")])
    with pytest.raises(ProviderError, match=r"no GatewayClass to use \(GatewayClasses: none\)"):
        resolve_gateway_class(None, [])


def test_gateway_address_url() -> None:
    assert gateway_address_url({"status": {"addresses": [{"type": "IPAddress", "value": "34.1.2.3"}]}}) == \
        "http://34.1.2.3:80"
    assert gateway_address_url({"status": {"addresses": [{"value": "fd00::1"}]}}) == "http://[fd00::1]:80"
    assert gateway_address_url({"status": {"addresses": [{"type": "Hostname", "value": "lb.example.com"}]}}) == \
        "http://lb.example.com:80"
    assert gateway_address_url({"status": {}}) is None


# --------------------------------------------------------------------------------------------
# Kubeconfig and reachability
# --------------------------------------------------------------------------------------------

KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "a",
    "contexts": [{"name": "a", "context": {"cluster": "ca", "user": "ua"}},
                 {"name": "b", "context": {"cluster": "cb", "user": "ub"}}],
    "clusters": [{"name": "ca", "cluster": {"server": "https://127.0.0.1:1"}},
                 {"name": "cb", "cluster": {"server": "https://127.0.0.1:2"}}],
    "users": [{"name": "ua", "user": {"token": "x"}}, {"name": "ub", "user": {"token": "y"}}],
}


def test_minified_kubeconfig() -> None:
    mini = minified_kubeconfig(KUBECONFIG, "b")
    assert mini["current-context"] == "b"
    assert [c["name"] for c in mini["clusters"]] == ["cb"] and [u["name"] for u in mini["users"]] == ["ub"]
    assert minified_kubeconfig(KUBECONFIG, None)["current-context"] == "a"
    with pytest.raises(ProviderError, match="kubeconfig has no context 'c' \\(contexts: a, b\\)"):
        minified_kubeconfig(KUBECONFIG, "c")


def test_kubeconfig_path_precedence(tmp_path: Path) -> None:
    explicit, env_file = tmp_path / "explicit", tmp_path / "env"
    env_file.write_text("")
    assert kubeconfig_path(explicit, {}) == explicit
    assert kubeconfig_path(None, {"KUBECONFIG": f"{tmp_path / 'missing'}:{env_file}", "HOME": str(tmp_path)}) == \
        env_file
    with pytest.raises(ProviderError, match="needs a kubeconfig: pass --kuberay-kubeconfig=FILE"):
        kubeconfig_path(None, {"HOME": str(tmp_path)})


def test_unreachable_cluster_names_the_server(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    with pytest.raises(ProviderError) as err:
        check_reachable(ClusterHandle("a", "existing", path, context="a"), timeout=5)
    assert str(err.value).startswith("cannot reach the cluster at https://127.0.0.1:1: ")
    assert len(str(err.value)) > len("cannot reach the cluster at https://127.0.0.1:1: ")


def test_unknown_context_is_a_kubeconfig_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    with pytest.raises(ProviderError, match=r"cannot load kubeconfig .*config \(context nope\)"):
        check_reachable(ClusterHandle("x", "existing", path, context="nope"))


def test_unreachable_cluster_through_the_fixture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """--kuberay-provider=existing on a dead server: the test errors with one line naming the server."""
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    pytester.makepyfile("def test_needs_cluster(kuberay_cluster):\n    pass\n")
    result = pytester.runpytest("--kuberay-provider=existing", f"--kuberay-kubeconfig={path}",
                                "--kuberay-kube-context=a", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot reach the cluster at https://127.0.0.1:1: *Connection refused*"])
