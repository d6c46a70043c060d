"""A directory tree becomes an OCI image archive through umoci (Debian's package), never by hand.

The archive is a tar of an OCI image layout whose index tags the manifest with the image's
tag, which is what ``ctr images import --base-name=<repository>`` expects.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kuberay.errors import ProviderError

__all__ = ["ImageConfig", "oci_archive"]


@dataclass(frozen=True)
class ImageConfig:
    """The few OCI config fields our images set."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""


def _umoci(*args: str) -> None:
    umoci = shutil.which("umoci")
    if umoci is None:
        raise ProviderError("building images needs umoci: `apt-get install umoci` (or `make setup`).")
    proc = subprocess.run([umoci, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ProviderError(f"`umoci {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")


def oci_archive(rootfs: Path, tag: str, config: ImageConfig, out: Path, work: Path) -> Path:
    """Write ``out``: one layer holding ``rootfs`` (as ``/``), tagged ``tag``, for linux/amd64."""
    layout = work / "layout"
    image = f"{layout}:{tag}"
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", image)
    _umoci("insert", "--image", image, str(rootfs), "/")
    args = ["config", "--image", image, "--os", "linux", "--architecture", "amd64"]
    for key, value in config.env.items():
        args += ["--config.env", f"{key}={value}"]
    if config.entrypoint:
        args += [f"--config.entrypoint={part}" for part in config.entrypoint]
    if config.cmd:
        args += [f"--config.cmd={part}" for part in config.cmd]
    if config.user:
        args += ["--config.user", config.user]
    if config.workdir:
        args += ["--config.workingdir", config.workdir]
    _umoci(*args)
    _umoci("gc", "--layout", str(layout))
    with tarfile.open(out, "w") as archive:
        for entry in sorted(layout.iterdir()):
            archive.add(entry, arcname=entry.name)
    return out
