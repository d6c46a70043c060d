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


def _archive(tmp_path, name: str, digest: str):
    """An OCI archive holding only an index.json naming ``digest`` (what ``archive_digest`` reads)."""
    import io
    import json
    import tarfile

    from pytest_kuberay.providers.local.images import ImageArchive

    path = tmp_path / f"{name.replace('/', '_').replace(':', '_')}-{digest[-4:]}.tar"
    data = json.dumps({"manifests": [{"digest": digest}]}).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return ImageArchive(name, path)


def test_an_image_seed_is_keyed_by_what_its_images_hold_and_the_containerd_build(tmp_path) -> None:
    from pathlib import Path

    from pytest_kuberay.providers.local.node.image_seed import seed_name

    containerd = Path("/cache/bin/containerd/v2.4.2/containerd")
    ray = _archive(tmp_path, "docker.io/rayproject/ray:2.46.0", "sha256:aaaa")
    pause = _archive(tmp_path, "registry.k8s.io/pause:3.10", "sha256:bbbb")
    name = seed_name(containerd, [ray, pause])
    assert name.startswith("containerd-root-v2.4.2-")
    assert seed_name(containerd, [pause, ray]) == name  # the order images are listed in does not matter
    rebuilt = _archive(tmp_path, "docker.io/rayproject/ray:2.46.0", "sha256:cccc")
    assert seed_name(containerd, [rebuilt, pause]) != name  # a rebuilt image is another seed
    assert seed_name(Path("/cache/bin/containerd/v2.5.0/containerd"), [ray, pause]) != name


def test_a_planted_seed_links_its_files_and_copies_the_databases_containerd_writes(tmp_path) -> None:
    from pytest_kuberay.providers.local.node.image_seed import plant_seed

    seed = tmp_path / "seed"
    layer = seed / "io.containerd.snapshotter.v1.overlayfs" / "snapshots" / "1" / "fs"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "python3").write_text("an unpacked file")
    (layer / "bin" / "python").symlink_to("python3")
    (seed / "io.containerd.snapshotter.v1.overlayfs" / "metadata.db").write_text("snapshots")
    (seed / "io.containerd.metadata.v1.bolt").mkdir()
    (seed / "io.containerd.metadata.v1.bolt" / "meta.db").write_text("images")

    root = tmp_path / "run" / "containerd" / "root"
    assert plant_seed(seed, root) is True
    planted = root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots" / "1" / "fs" / "bin"
    assert os.stat(planted / "python3").st_ino == os.stat(layer / "bin" / "python3").st_ino
    assert os.readlink(planted / "python") == "python3"
    for db in ("io.containerd.snapshotter.v1.overlayfs/metadata.db", "io.containerd.metadata.v1.bolt/meta.db"):
        assert os.stat(root / db).st_ino != os.stat(seed / db).st_ino, f"{db} must be a copy, not a link"
        assert (root / db).read_text() == (seed / db).read_text()
