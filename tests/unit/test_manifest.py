"""Your own RayService manifest: loaded, checked with one readable line per mistake, prepared for a test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kuberay.errors import ManifestError
from pytest_kuberay.workloads.manifest import (
    images_of,
    load_rayservice,
    prepare_rayservice,
    starts_an_upgrade,
    upgraded_manifest,
)
from pytest_kuberay.workloads.rayservice import IncrementalUpgradeOptions, echo_rayservice


@pytest.fixture
def mine() -> dict[str, Any]:
    manifest = echo_rayservice("fruit", "theirs", "rayproject/ray:2.46.0", IncrementalUpgradeOptions("istio", 50, 50))
    del manifest["metadata"]["namespace"]
    return manifest


def test_prepare_puts_it_in_our_namespace_with_the_options_asked_for(mine: dict[str, Any]) -> None:
    prepared = prepare_rayservice(mine, namespace="kr-test", gateway_class="traefik", max_surge_percent=20,
                                  apps={"fruit": Path("/apps/fruit")})
    assert prepared["metadata"]["namespace"] == "kr-test"
    options = prepared["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]
    assert options == {"gatewayClassName": "istio", "maxSurgePercent": 20, "stepSizePercent": 50,
                       "intervalSeconds": 5}, "the manifest's own GatewayClass wins; only asked-for options change"
    head = prepared["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "app-fruit", "configMap": {"name": "serve-app-fruit"}} in head["volumes"]
    assert {"name": "app-fruit", "mountPath": "/home/ray/apps/fruit"} in head["containers"][0]["volumeMounts"]
    assert mine["metadata"].get("namespace") is None, "the caller's manifest is not changed"


def test_a_file_may_hold_other_documents(tmp_path: Path, mine: dict[str, Any]) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "ConfigMap", "metadata": {"name": "x"}}, mine]))
    assert load_rayservice(path)["metadata"]["name"] == "fruit"
    assert images_of(load_rayservice(path)) == ["rayproject/ray:2.46.0"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["spec"]["upgradeStrategy"].update(type="NewCluster"),
     "spec.upgradeStrategy.type is 'NewCluster', not NewClusterWithIncrementalUpgrade: set it"),
    (lambda m: m["spec"]["rayClusterConfig"].pop("enableInTreeAutoscaling"),
     "needs spec.rayClusterConfig.enableInTreeAutoscaling: true"),
    (lambda m: m["spec"].update(serveConfigV2="applications: [{name: x, import_path: 7, route_prefix: nope}]"),
     "spec.serveConfigV2 is not a valid Serve config"),
    (lambda m: m["spec"].update(serveConfigV2=""), "spec.serveConfigV2 must be a Serve config"),
])
def test_mistakes_get_one_line_that_says_what_to_fix(mine: dict[str, Any], edit: Any, message: str) -> None:
    edit(mine)
    with pytest.raises(ManifestError) as err:
        prepare_rayservice(mine, namespace="kr", gateway_class="traefik")
    assert message in str(err.value)
    assert "\n" not in str(err.value).split(": ", 1)[0]


def test_not_a_rayservice_file(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text("kind: ConfigMap\n---\nkind: Pod\n")
    with pytest.raises(ManifestError, match=r"must hold exactly one RayService .* found 0"):
        load_rayservice(tmp_path / "two.yaml")
    with pytest.raises(ManifestError, match="cannot read the RayService manifest"):
        load_rayservice(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    with pytest.raises(ManifestError, match="is not valid YAML"):
        load_rayservice(tmp_path / "bad.yaml")


def test_which_changes_start_an_upgrade(mine: dict[str, Any]) -> None:
    before = prepare_rayservice(mine, namespace="kr", gateway_class="traefik")
    scaled = copy.deepcopy(before)
    scaled["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = 3
    serve_only = copy.deepcopy(before)
    serve_only["spec"]["serveConfigV2"] = serve_only["spec"]["serveConfigV2"].replace("v1", "v9")
    new_image = copy.deepcopy(before)
    new_image["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "r:2"
    assert not starts_an_upgrade(before, scaled)
    assert not starts_an_upgrade(before, serve_only)
    assert starts_an_upgrade(before, new_image)


def test_upgrade_to_an_edit_of_a_copy_keeps_name_and_namespace(mine: dict[str, Any]) -> None:
    before = prepare_rayservice(mine, namespace="kr", gateway_class="traefik")

    def more_cpu(manifest: dict[str, Any]) -> None:
        manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0][
            "resources"]["limits"]["cpu"] = "2"

    after = upgraded_manifest(before, more_cpu)
    assert after["metadata"]["namespace"] == "kr" and after["metadata"]["name"] == "fruit"
    assert starts_an_upgrade(before, after)
    worker = before["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["cpu"] == "1", "the edit works on a copy"
