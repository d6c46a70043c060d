"""Root filesystems from Debian's packages, made by mmdebstrap through the host's own apt sources.

mmdebstrap reads the host's apt configuration, so no mirror is written anywhere and the
packages come from whatever Debian archive the machine already uses. The base tree is
kept as a tarball per (suite, package list); each image unpacks a copy and adds its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.images.cache import cached_build

__all__ = ["DEBIAN_SUITE", "chroot_run", "debian_rootfs", "unpack_rootfs"]

#: The host's Debian release: its archive is the one apt here reaches, and its Python is 3.11.
DEBIAN_SUITE = "bookworm"
#: A clean environment for commands in the new root: the host's pip settings must not leak in.
_CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8"}


def debian_rootfs(packages: Sequence[str], suite: str = DEBIAN_SUITE) -> Path:
    """A cached tarball of a minbase Debian ``suite`` with ``packages`` installed."""
    name = f"rootfs-{suite}-" + "+".join(sorted(packages)) + ".tar"
    with cached_build(name, f"a Debian {suite} root filesystem with {', '.join(packages)}") as (final, work):
        if work is not None:
            mmdebstrap = shutil.which("mmdebstrap")
            if mmdebstrap is None:
                raise ProviderError("building images needs mmdebstrap: `apt-get install mmdebstrap` (or `make setup`).")
            log = work / "mmdebstrap.log"
            with open(log, "w") as out:
                proc = subprocess.run(
                    [mmdebstrap, "--variant=minbase", f"--include={','.join(packages)}", "--mode=root",
                     suite, str(work / "rootfs.tar")],  # the extension makes mmdebstrap write a tarball
                    stdout=out, stderr=subprocess.STDOUT, check=False, env={**_CHROOT_ENV, "TMPDIR": str(work)},
                )
            if proc.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise ProviderError(f"mmdebstrap {suite} failed (exit {proc.returncode}):\n{tail}")
            (work / "rootfs.tar").replace(work / "out")
    return final


def unpack_rootfs(tarball: Path, dest: Path) -> Path:
    """Extract a rootfs tarball with owners, modes and device nodes as they are."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(dest, numeric_owner=True, filter="fully_trusted")
    return dest


def chroot_run(root: Path, command: str, log: Path, what: str) -> None:
    """Run a shell command inside ``root`` with a clean environment; fail with the log's tail."""
    with open(log, "a") as out:
        proc = subprocess.run(["chroot", str(root), "/bin/sh", "-c", command], stdout=out, stderr=subprocess.STDOUT,
                              env=_CHROOT_ENV, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ProviderError(f"{what} failed (exit {proc.returncode}) in {root}:\n{tail}")


def remove_tree(path: Path) -> None:
    """Remove an unpacked rootfs (it has read-only directories from the packages)."""
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o755)
    shutil.rmtree(path, ignore_errors=True)
