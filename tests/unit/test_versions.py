"""KubeRay version parsing and what follows from a version."""

from __future__ import annotations

import pytest
from packaging.version import Version

from pytest_kuberay.errors import SettingsError
from pytest_kuberay.versions import (
    DEFAULT_KUBERAY_VERSION,
    KNOWN_RELEASES,
    KubeRayVersion,
    parse_version,
    parse_version_list,
)


@pytest.mark.parametrize("text", ["v1.5.0", "1.5.0", " v1.5.0 "])
def test_v_prefix_and_whitespace_are_optional(text: str) -> None:
    version = parse_version(text)
    assert version == KubeRayVersion(Version("1.5.0"))
    assert version.patches == ()


def test_patch_label_is_part_of_the_identity() -> None:
    patched = parse_version("v1.5.0+pr4212")
    assert patched.release == Version("1.5.0")
    assert patched.patches == ("pr4212",)
    assert patched != parse_version("v1.5.0")
    assert patched.tag == "v1.5.0"
    assert patched.label == "v1.5.0+pr4212"
    assert str(patched) == "v1.5.0+pr4212"


def test_list_keeps_order_and_drops_duplicates() -> None:
    versions = parse_version_list("v1.6.0, 1.5.0,v1.6.0,v1.5.0+pr4212,,v1.5.0")
    assert [v.label for v in versions] == ["v1.6.0", "v1.5.0", "v1.5.0+pr4212"]


def test_default_version_parses() -> None:
    assert parse_version_list(DEFAULT_KUBERAY_VERSION)[0].label == DEFAULT_KUBERAY_VERSION


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("v1.4.0", "unknown KubeRay release v1.4.0"),
        ("v9.9.9", "unknown KubeRay release v9.9.9"),
        ("v1.5.0+pr9999", "unknown patch 'pr9999'"),
        ("v1.5.0+pr4212.nope", "unknown patch 'nope'"),
        ("bogus", "not a KubeRay version"),
        ("v1.5", "not a KubeRay version"),
        ("latest", "not a KubeRay version"),
        ("v1.5.0+", "not a KubeRay version"),
    ],
)
def test_bad_versions_are_usage_errors(text: str, why: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_version(text)
    message = str(excinfo.value)
    assert message.startswith("--kuberay-version: ")
    assert why in message
    assert repr(text) in message
    for release in KNOWN_RELEASES:
        assert f"v{release}" in message
    assert "pr4212" in message
    assert "Examples: --kuberay-version=v1.5.0" in message


@pytest.mark.parametrize("text", ["", " , ,", "v1.5.0,bogus"])
def test_bad_lists_are_usage_errors(text: str) -> None:
    with pytest.raises(SettingsError, match=r"Known releases: v1\.5\.0"):
        parse_version_list(text)


@pytest.mark.parametrize(
    ("text", "chart", "ray_image", "rollback", "gate_on"),
    [
        ("v1.5.0", "1.5.0", "rayproject/ray:2.46.0", False, False),
        ("v1.5.1+pr4212", "1.5.1", "rayproject/ray:2.46.0", False, False),
        ("v1.6.0", "1.6.0", "rayproject/ray:2.52.0", True, False),
        ("v1.7.0", "1.7.0", "rayproject/ray:2.55.0", True, True),
    ],
)
def test_version_properties(text: str, chart: str, ray_image: str, rollback: bool, gate_on: bool) -> None:
    version = parse_version(text)
    assert version.helm_chart_version == chart
    assert version.tag == f"v{chart}"
    assert version.operator_image == f"quay.io/kuberay/operator:v{chart}"
    assert version.default_ray_image == ray_image
    assert version.supports_rollback is rollback
    assert version.incremental_upgrade_gate_default_on is gate_on


def test_versions_sort_by_release() -> None:
    versions = [parse_version(t) for t in ("v1.7.0", "v1.5.0+pr4212", "v1.5.1", "v1.5.0")]
    assert [v.label for v in sorted(versions)] == ["v1.5.0", "v1.5.0+pr4212", "v1.5.1", "v1.7.0"]
