"""Which images the local provider builds, and the one line a Ray version without wheels gets."""

from __future__ import annotations

import os
import re

import pytest

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.images import ensure_image
from pytest_kuberay.providers.local.images.operator_image import operator_image_name
from pytest_kuberay.providers.local.images.ray_image import RayImage, parse_ray_image


@pytest.mark.parametrize(("image", "expected"), [
    ("rayproject/ray:2.46.0", RayImage("docker.io/rayproject/ray:2.46.0", "2.46.0")),
    ("docker.io/rayproject/ray:2.52.0", RayImage("docker.io/rayproject/ray:2.52.0", "2.52.0")),
    ("rayproject/ray:2.46.0-py311", RayImage("docker.io/rayproject/ray:2.46.0-py311", "2.46.0")),
    ("quay.io/kuberay/operator:v1.5.0", None),
])
def test_ray_images_by_name(image: str, expected: RayImage | None) -> None:
    assert parse_ray_image(image) == expected


@pytest.mark.parametrize("image", ["rayproject/ray:2.46.0-py312", "rayproject/ray:2.46.0-gpu", "rayproject/ray:latest"])
def test_ray_images_it_cannot_build_say_which_it_can(image: str) -> None:
    with pytest.raises(ProviderError, match=r"builds Ray images as rayproject/ray:<version> with Python 3\.11"):
        parse_ray_image(image)


def test_other_images_are_refused_with_the_reason() -> None:
    with pytest.raises(ProviderError, match="no registry to pull others from"):
        ensure_image("nginx:1.27")


def test_operator_image_tags_have_no_plus() -> None:
    assert operator_image_name("v1.5.0+pr4212") == "localhost/pytest-kuberay/kuberay-operator:v1.5.0-pr4212"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PIP_NO_INDEX") == "1", reason="needs a package index (PyPI) to list Ray's wheels")
def test_a_ray_version_without_wheels_names_the_ones_with_wheels(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real lookup on the package index: Ray 2.0.0 has no wheel for Python 3.11."""
    monkeypatch.setenv("PYTEST_KUBERAY_CACHE", str(tmp_path))
    with pytest.raises(ProviderError) as err:
        ensure_image("rayproject/ray:2.0.0")
    message = str(err.value)
    assert "Ray 2.0.0 has no wheel for Python 3.11" in message
    assert re.search(r"versions that do: (\d+\.\d+\.\d+, ){8}\.\.\. \(\d+ in all, the oldest \d+\.\d+\.\d+\)", message)
    assert "\n" not in message
