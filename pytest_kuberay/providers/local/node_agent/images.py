"""Container images map to programs already on this machine; there is no image store.

The mapping, by the image's repository name (the part after the last ``/``, before the tag):

* **Ray images** -- any repository whose name contains ``ray`` (``rayproject/ray``,
  ``rayproject/ray-ml``, ``my-org/ray-serve-app``...): the container runs with ``PATH``
  led by ``<python env>/bin``, the Python environment given to the agent with
  ``--python-env`` (it has ``ray[serve]`` installed), so ``ray``, ``serve`` and ``python``
  are that environment's. Like the real image, ``HOME`` and the default working directory
  are ``/home/ray``, a private directory per pod; its ``.bash_profile`` puts the
  environment back in front of ``PATH`` after ``/etc/profile`` reset it, because KubeRay's
  ``wait-gcs-ready`` init container runs ``bash -lc``. When the image's tag names a Ray
  version other than the installed one, the agent logs one warning per tag: the cluster
  runs the installed Ray whatever the tag says.
* **Every other image** (``python:3.11``, ``busybox``...): the container runs with the
  agent's own ``PATH``, ``HOME=/root`` and working directory ``/``. The command must exist
  on the host: ``python:3.11`` with ``python3 -m http.server`` works, an image's entrypoint
  does not (a container without ``command`` fails with a message saying so).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ImageProfile", "RayVersionCheck", "image_profile", "installed_ray_version", "is_ray_image", "ray_tag"]

log = logging.getLogger(__name__)

RAY_HOME = "/home/ray"
DEFAULT_HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _repository(image: str) -> str:
    """``registry/org/name:tag@digest`` -> ``name``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def is_ray_image(image: str) -> bool:
    """True for images that run on the Ray Python environment (see the module docstring)."""
    return "ray" in _repository(image).lower()


def ray_tag(image: str) -> str | None:
    """The Ray version an image tag names (``2.46.0`` from ``rayproject/ray:2.46.0-py311-cpu``), if any."""
    tag = _tag(image)
    match = re.match(r"^(\d+\.\d+\.\d+)", tag or "")
    return match.group(1) if match else None


def installed_ray_version(python_env: Path) -> str | None:
    """The ``ray`` version installed in ``python_env`` (from its dist-info), None if it has none."""
    for dist in sorted(python_env.glob("lib/python*/site-packages/ray-*.dist-info")):
        match = re.match(r"^ray-(.+)\.dist-info$", dist.name)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class ImageProfile:
    """How a container of this image runs here."""

    ray: bool
    path: str
    home: str
    workdir: str
    private_home: bool


def image_profile(image: str, python_env: Path, host_path: str | None = None) -> ImageProfile:
    """The profile for ``image`` (see the module docstring)."""
    host = host_path if host_path is not None else os.environ.get("PATH", DEFAULT_HOST_PATH)
    if is_ray_image(image):
        path = f"{python_env / 'bin'}:{DEFAULT_HOST_PATH}"
        return ImageProfile(ray=True, path=path, home=RAY_HOME, workdir=RAY_HOME, private_home=True)
    return ImageProfile(ray=False, path=host, home="/root", workdir="/", private_home=False)


class RayVersionCheck:
    """Warns once per Ray version tag that differs from the installed Ray."""

    def __init__(self, python_env: Path) -> None:
        self.installed = installed_ray_version(python_env)
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def check(self, image: str) -> str | None:
        """Log (once per tag) and return a warning when ``image`` names another Ray version."""
        wanted = ray_tag(image) if is_ray_image(image) else None
        if wanted is None or self.installed is None or wanted == self.installed:
            return None
        message = (
            f"image {image} asks for Ray {wanted}, but pods run the installed Ray {self.installed} "
            "(the local provider maps every Ray image to one Python environment)"
        )
        with self._lock:
            if wanted in self._warned:
                return None
            self._warned.add(wanted)
        log.warning("%s", message)
        return message
