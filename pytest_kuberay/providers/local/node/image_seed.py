"""A containerd root with the session's images already imported and unpacked, planted into each new node.

Importing the Ray image (one 200 MB gzipped layer, 550 MB unpacked) into a new containerd takes
15-20 s on two cores, almost all of it unpacking, and a fresh cluster waited for it after its
operator was Ready. A kind node image ships its images preloaded; the local provider does the
same with a *seed*: the first session imports the images once into a containerd of its own and
keeps that root directory in the image cache. Every new node then starts from a hard-linked copy
of it, which takes about half a second.

Hard links are safe because nothing writes through them: content blobs are immutable, and
unpacked layers are only ever the read-only lower directories of overlay mounts (a container's
writes go to its own upper directory). The two bolt databases, which containerd does write, are
copied. Where the cache and the run directory sit on different filesystems the node simply
imports as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pytest_kuberay._support.processes import ManagedProcess, wait_until
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.host_tools import require_commands
from pytest_kuberay.providers.local.images import ImageArchive
from pytest_kuberay.providers.local.images.cache import cached_build
from pytest_kuberay.providers.local.node.containerd import CRI_NAMESPACE, archive_digest, import_args

__all__ = ["SEED_RECIPE", "ensure_seed", "plant_seed", "seed_name"]

log = logging.getLogger(__name__)

#: Bumped when the way a seed is made changes, so cached seeds are rebuilt.
SEED_RECIPE = 1
#: containerd writes these in place; every other file of its root is linked.
_WRITTEN_IN_PLACE = ("meta.db", "metadata.db")


def seed_name(containerd: Path, images: Sequence[ImageArchive]) -> str:
    """The cache entry for these images unpacked by this containerd build (its directory names the version)."""
    wanted = sorted({(image.name, archive_digest(image.archive) or str(image.archive)) for image in images})
    key = hashlib.sha256(json.dumps([SEED_RECIPE, str(containerd), wanted]).encode()).hexdigest()[:12]
    return f"containerd-root-{containerd.parent.name}-{key}"


def _seed_config(root: Path, state: Path, socket: Path) -> str:
    """Only what importing needs: no CRI, no network plugins, overlayfs (the node's snapshotter) by default."""
    return f"""version = 4
root = {json.dumps(str(root))}
state = {json.dumps(str(state))}
temp = {json.dumps(str(state / "tmp"))}
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
                    "io.containerd.nri.v1.nri", "io.containerd.server.v1.grpc-tcp"]

[plugins."io.containerd.server.v1.grpc"]
  address = {json.dumps(str(socket))}

[plugins."io.containerd.server.v1.ttrpc"]
  address = {json.dumps(str(socket) + ".ttrpc")}

[plugins."io.containerd.server.v1.debug"]
  address = ""

[plugins."io.containerd.server.v1.metrics"]
  address = ""
"""


def ensure_seed(images: Sequence[ImageArchive], containerd: Path, ctr: Path, timeout: float = 600.0) -> Path:
    """The cached containerd root holding ``images`` unpacked; built on first use (one import each)."""
    what = f"a containerd root with {', '.join(sorted(i.name for i in images))} unpacked"
    with cached_build(seed_name(containerd, images), what) as (final, work):
        if work is not None:
            _import_into(work / "out", images, containerd, ctr, work, timeout)
    return final


def _import_into(root: Path, images: Sequence[ImageArchive], containerd: Path, ctr: Path, work: Path,
                 timeout: float) -> None:
    # A short path for the socket (at most 108 bytes), removed with everything else of the build.
    state = Path(tempfile.mkdtemp(prefix="pytest-kuberay-seed-"))
    socket = state / "c.sock"
    config = work / "config.toml"
    config.write_text(_seed_config(root, state, socket))
    unshare = require_commands("unshare")["unshare"]
    # Its own mount namespace: the bind mounts of unpacking can never outlive it on the host.
    process = ManagedProcess(
        "containerd (image seed)",
        [unshare, "--mount", "--propagation", "private", "--fork", "--kill-child", str(containerd),
         f"--config={config}", "--log-level=warn"],
        work / "containerd.log",
        {"PATH": f"{containerd.parent}:/usr/sbin:/usr/bin:/sbin:/bin"},
    )

    def run_ctr(*args: str, seconds: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ctr), f"--address={socket}", f"--namespace={CRI_NAMESPACE}", *args],
                              capture_output=True, text=True, timeout=seconds, check=False)

    try:
        process.start()
        wait_until(lambda: run_ctr("version").returncode == 0, timeout=30,
                   what="the seed's containerd to answer", processes=[process])
        for image in images:
            proc = run_ctr(*import_args(image.archive, image.name), seconds=timeout)
            if proc.returncode != 0:
                raise ProviderError(f"importing {image.archive} into the image seed failed: "
                                    f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    finally:
        process.stop(grace=10.0)
        shutil.rmtree(state, ignore_errors=True)


def _link_unless_written(source: str, target: str) -> None:
    if os.path.basename(source) in _WRITTEN_IN_PLACE:
        shutil.copy2(source, target)
    else:
        os.link(source, target, follow_symlinks=False)


def plant_seed(seed: Path, root: Path) -> bool:
    """Make ``root`` (which must not exist yet) a copy of ``seed``; False where hard links cannot reach it."""
    root.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(seed).st_dev != os.stat(root.parent).st_dev:
        log.info("image seed %s is on another filesystem than %s: importing images instead", seed, root)
        return False
    shutil.copytree(seed, root, symlinks=True, copy_function=_link_unless_written)
    return True
