"""``rayproject/ray:<version>`` built offline: Debian + a venv with exactly that Ray from PyPI's wheels.

What KubeRay's generated pods run must be there: ``bash`` (the container command),
``wget`` and ``grep`` (the readiness probes), and ``ray`` on PATH. Like the upstream image
it runs as user ``ray`` (uid 1000, gid 100) in ``/home/ray``. The Ray version is the
tag's, never the one installed on the host.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.images.cache import cached_build
from pytest_kuberay.providers.local.images.oci import ImageConfig, oci_archive
from pytest_kuberay.providers.local.images.rootfs import chroot_run, debian_rootfs, remove_tree, unpack_rootfs

__all__ = ["RAY_REPOSITORY", "RayImage", "ensure_ray_image", "parse_ray_image"]

RAY_REPOSITORY = "docker.io/rayproject/ray"
#: The Python of the Debian release the image is built from (bookworm).
IMAGE_PYTHON = "3.11"
VENV = "/home/ray/venv"
#: Bumped when the way the image is built changes, so cached images are rebuilt.
IMAGE_RECIPE = 2
BASE_PACKAGES = ("bash", "ca-certificates", "grep", "python3", "python3-venv", "wget")
_TAG = re.compile(r"^(?P<version>\d+\.\d+\.\d+)(?:-py(?P<py>\d)(?P<pyminor>\d+))?$")
#: Wheel tags pip may pick for the image's glibc (2.36).
_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "manylinux_2_31_x86_64")


@dataclass(frozen=True)
class RayImage:
    """A Ray image the local provider can build: its full name and the Ray version it carries."""

    name: str
    ray_version: str


def parse_ray_image(image: str) -> RayImage | None:
    """``rayproject/ray:2.46.0`` (or ``docker.io/...``, ``-py311``) -> RayImage; other images -> None.

    A ``rayproject/ray`` tag we cannot build (another Python, a CUDA flavour) is a clear error.
    """
    name = image if "/" in image.split(":")[0] and "." in image.split("/")[0] else f"docker.io/{image}"
    repository, _, tag = name.rpartition(":")
    if repository != RAY_REPOSITORY:
        return None
    match = _TAG.match(tag)
    py = f"{match.group('py')}.{match.group('pyminor')}" if match and match.group("py") else IMAGE_PYTHON
    if not match or py != IMAGE_PYTHON:
        raise ProviderError(
            f"the local provider builds Ray images as rayproject/ray:<version> with Python {IMAGE_PYTHON} "
            f"(Debian's); it cannot build {image!r}. Use e.g. rayproject/ray:2.46.0 or "
            f"rayproject/ray:2.46.0-py311 (--kuberay-ray-image)."
        )
    return RayImage(name, match.group("version"))


def _pip_target_args() -> list[str]:
    args = ["--only-binary=:all:", "--python-version", IMAGE_PYTHON, "--implementation", "cp",
            "--abi", f"cp{IMAGE_PYTHON.replace('.', '')}"]
    for platform in _PLATFORMS:
        args += ["--platform", platform]
    return args


def _versions_with_wheels() -> str:
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "ray", *_pip_target_args()],
                          capture_output=True, text=True, check=False)
    match = re.search(r"Available versions: (.*)", proc.stdout)
    if not match:
        return "(pip could not list them)"
    versions = match.group(1).split(", ")  # newest first
    if len(versions) <= 10:
        return ", ".join(versions)
    return f"{', '.join(versions[:8])}, ... ({len(versions)} in all, the oldest {versions[-1]})"


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def release_cutoff(ray_version: str) -> str:
    """One day after ``ray==<version>`` was uploaded to the package index, as an ISO 8601 UTC time.

    Ray pins few upper bounds (its release images install from a compiled lock file we cannot
    fetch offline), so resolving today pulls dependencies that did not exist at its release:
    Ray 2.46 breaks on protobuf 7 (``FieldDescriptor.label``). Resolving "as of the release"
    gives the dependency set its users had. The day's margin covers wheels uploaded later
    for other platforms.
    """
    url = f"{_index_url()}/ray/"
    try:
        reply = httpx.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60,
                          follow_redirects=True)
        files = reply.json().get("files", []) if reply.status_code == 200 else []
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderError(f"cannot read Ray's release dates from {url}: {exc}") from exc
    times = [f["upload-time"] for f in files
             if str(f.get("filename", "")).startswith(f"ray-{ray_version}-") and f.get("upload-time")]
    if not times:
        raise ProviderError(
            f"the package index {_index_url()} lists no upload time for ray {ray_version} (it must serve the "
            "JSON simple API, PEP 691/700); versions with wheels: " + _versions_with_wheels())
    first = dt.datetime.fromisoformat(min(times).replace("Z", "+00:00"))
    return (first + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wheels(ray_version: str) -> Path:
    """``ray[serve]==<version>`` and its dependencies as of its release, as wheels for the image's Python."""
    with cached_build(f"wheels-ray-{ray_version}-cp{IMAGE_PYTHON}-as-released",
                      f"the wheels of ray[serve]=={ray_version} for Python {IMAGE_PYTHON}") as (final, work):
        if work is not None:
            cutoff = release_cutoff(ray_version)
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--dest", str(work / "out"), "--uploaded-prior-to", cutoff, *_pip_target_args(),
                 f"ray[serve]=={ray_version}"],
                capture_output=True, text=True, check=False, env=_pip_env(),
            )
            if "no such option: --uploaded-prior-to" in proc.stderr:
                raise ProviderError("building Ray images needs pip >= 26 (--uploaded-prior-to): "
                                    f"`{sys.executable} -m pip install --upgrade pip`.")
            if proc.returncode != 0:
                if "No matching distribution" in proc.stderr or "Could not find a version" in proc.stderr:
                    raise ProviderError(
                        f"Ray {ray_version} has no wheel for Python {IMAGE_PYTHON} (the image's Python) on "
                        f"this package index; versions that do: {_versions_with_wheels()}. "
                        "Pick one with --kuberay-ray-image=rayproject/ray:<version>."
                    )
                raise ProviderError(f"pip download ray[serve]=={ray_version} failed: {proc.stderr.strip()[-1500:]}")
            (work / "out" / "resolved-as-of.txt").write_text(f"{cutoff}\n")
    return final


def _pip_env() -> dict[str, str]:
    """The environment for pip, without local wheel directories that would bypass the index's dates."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIP_FIND_LINKS")}


def ensure_ray_image(image: RayImage) -> Path:
    """The OCI archive of ``image``, built on first use (about two minutes) and cached."""
    wheels = _wheels(image.ray_version)
    base = debian_rootfs(BASE_PACKAGES)
    tag = image.name.rpartition(":")[2]
    # Keyed by the exact wheel set too: a different resolution is a different image.
    wheel_set = hashlib.sha256("\n".join(sorted(p.name for p in wheels.glob("*.whl"))).encode()).hexdigest()[:10]
    with cached_build(f"image-ray-{tag}-py{IMAGE_PYTHON}-{wheel_set}-r{IMAGE_RECIPE}.oci.tar",
                      f"the image {image.name} (Ray {image.ray_version}, Python {IMAGE_PYTHON})") as (final, work):
        if work is not None:
            root = unpack_rootfs(base, work / "rootfs")
            try:
                log = work / "build.log"
                shutil.copytree(wheels, root / "tmp" / "wheels", ignore=shutil.ignore_patterns("*.txt"))
                chroot_run(root, "groupadd -f -g 100 users && useradd -u 1000 -g 100 -m -d /home/ray -s /bin/bash ray",
                           log, "adding user ray")
                # Byte-compiled here, once: otherwise every container compiles Ray's modules on start,
                # tens of CPU-seconds per pod that starved a 2-core node's probes.
                chroot_run(root, f"python3 -m venv {VENV} && {VENV}/bin/pip install --quiet --no-index "
                                 f"--disable-pip-version-check --find-links /tmp/wheels "
                                 f"'ray[serve]=={image.ray_version}' && chown -R 1000:100 /home/ray && "
                                 f"rm -rf /tmp/wheels /root/.cache", log, f"installing Ray {image.ray_version}")
                config = ImageConfig(
                    cmd=("/bin/bash",),
                    env={"PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "HOME": "/home/ray", "LANG": "C.UTF-8"},
                    user="1000:100",
                    workdir="/home/ray",
                )
                oci_archive(root, tag, config, work / "out", work)
            finally:
                remove_tree(root)
    return final
