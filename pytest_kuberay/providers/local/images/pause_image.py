"""The pod sandbox ("pause") image, compiled from the pause.c that the Kubernetes module ships.

It is the same program as registry.k8s.io/pause, built with the host's gcc as a static
binary, so no registry is needed. It is named for its origin, not after the upstream image.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pytest_kuberay._support import toolchain
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.images.cache import cached_build
from pytest_kuberay.providers.local.images.oci import ImageConfig, oci_archive

__all__ = ["PAUSE_REPOSITORY", "ensure_pause_image", "pause_image_name"]

PAUSE_REPOSITORY = "localhost/pytest-kuberay/pause"


def pause_image_name() -> str:
    return f"{PAUSE_REPOSITORY}:{toolchain.component_version('kubelet')}"


def ensure_pause_image() -> Path:
    version = toolchain.component_version("kubelet")
    with cached_build(f"image-pause-{version}.oci.tar", f"the pause image {pause_image_name()}") as (final, work):
        if work is not None:
            gcc = shutil.which("gcc")
            if gcc is None:
                raise ProviderError("building the pause image needs gcc: `apt-get install gcc libc6-dev`.")
            source = toolchain.kubernetes_source_dir() / "build" / "pause" / "linux" / "pause.c"
            root = work / "rootfs"
            root.mkdir()
            proc = subprocess.run([gcc, "-Os", "-static", "-Wall", f"-DVERSION={version}", "-o",
                                   str(root / "pause"), str(source)], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ProviderError(f"compiling {source} failed: {proc.stderr.strip()[-1500:]}")
            oci_archive(root, version, ImageConfig(entrypoint=("/pause",), user="65535:65535"), work / "out", work)
    return final
