"""Container images for the local provider's real node, built here from Debian packages and PyPI wheels.

Nothing is pulled from a container registry: each image is built once (cached under the
user cache with a lock) and imported into the run's containerd under the fully qualified
name a manifest uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.images.operator_image import ensure_operator_image, operator_image_name
from pytest_kuberay.providers.local.images.pause_image import ensure_pause_image, pause_image_name
from pytest_kuberay.providers.local.images.ray_image import ensure_ray_image, parse_ray_image

__all__ = ["ImageArchive", "ensure_image", "operator_image", "pause_image"]


@dataclass(frozen=True)
class ImageArchive:
    """An OCI archive and the name it is imported as."""

    name: str
    archive: Path


def pause_image() -> ImageArchive:
    return ImageArchive(pause_image_name(), ensure_pause_image())


def operator_image(binary: Path, label: str) -> ImageArchive:
    """The operator image for a binary the toolchain built (release, patched release or checkout)."""
    return ImageArchive(operator_image_name(label), ensure_operator_image(binary, label))


def ensure_image(image: str) -> ImageArchive:
    """The archive for an image a pod asks for; only images we know how to build are accepted."""
    ray = parse_ray_image(image)
    if ray is not None:
        return ImageArchive(ray.name, ensure_ray_image(ray))
    raise ProviderError(
        f"the local provider cannot provide image {image!r}: it builds rayproject/ray:<version> images "
        "itself and has no registry to pull others from. Use a rayproject/ray image, or another provider."
    )
