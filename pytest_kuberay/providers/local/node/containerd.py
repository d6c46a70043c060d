"""containerd 2.x with runc as the node's container runtime, every path inside the run directory.

containerd's defaults (``/var/lib/containerd``, ``/run/containerd``, ``/opt/containerd``,
``/etc/cni/net.d``, pod network namespaces under ``/run/netns``) would leave state on the
host; the config below moves all of it under ``<run>/node/containerd``. Two settings are
needed on this kind of machine:

* ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, so the sandbox's
  negative ``oom_score_adj`` is refused (runc only reports "can't get final child's PID
  from pipe"); containerd then clamps it to what it may set.
* runc, not crun: crun refuses the hybrid cgroup layout.

Images are imported with ``ctr images import`` from OCI archives; nothing is pulled.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tarfile
from pathlib import Path

from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, wait_until
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.node.namespaces import NodeNamespaces

__all__ = ["CRI_NAMESPACE", "Containerd", "archive_digest", "containerd_config", "import_args"]

log = logging.getLogger(__name__)

#: The containerd namespace the CRI plugin (and so kubelet) uses.
CRI_NAMESPACE = "k8s.io"


def _toml_str(value: str | Path) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Inside the node's mount namespace /run is a private tmpfs: the socket gets containerd's short default path.
SOCKET = "/run/containerd/containerd.sock"


def containerd_config(root: Path, *, runc: str, cni_bin_dir: Path, cni_conf_dir: Path, sandbox_image: str) -> str:
    """containerd's config (version 4): state under ``root``, sockets in the node namespace's private /run."""
    q = _toml_str
    return f"""version = 4
root = {q(root / "root")}
state = {q(root / "state")}
temp = {q(root / "tmp")}
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing", "io.containerd.server.v1.grpc-tcp"]

[plugins."io.containerd.server.v1.grpc"]
  address = {q(SOCKET)}

[plugins."io.containerd.server.v1.ttrpc"]
  address = {q(SOCKET + ".ttrpc")}

[plugins."io.containerd.server.v1.debug"]
  address = ""

[plugins."io.containerd.server.v1.metrics"]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {q(root / "opt")}

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = {q(runc)}
        Root = {q(root / "runc")}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{q(cni_bin_dir)}]
    conf_dir = {q(cni_conf_dir)}
    use_internal_loopback = true

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {q(sandbox_image)}

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


class Containerd:
    """containerd in the node's namespaces, and ``ctr`` to import images into it."""

    def __init__(self, root: Path, binary: Path, ctr: Path, namespaces: NodeNamespaces, spawn: ProcessFactory,
                 *, runc: str, cni_bin_dir: Path, cni_conf_dir: Path, sandbox_image: str) -> None:
        self.root = root
        self.binary = binary
        self.ctr = ctr
        self.namespaces = namespaces
        self.spawn = spawn
        self.config = containerd_config(root, runc=runc, cni_bin_dir=cni_bin_dir, cni_conf_dir=cni_conf_dir,
                                        sandbox_image=sandbox_image)
        self.process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        """What kubelet's ``containerRuntimeEndpoint`` takes (kubelet runs in the same namespaces)."""
        return f"unix://{SOCKET}"

    @property
    def log_path(self) -> Path:
        return self.root / "containerd.log"

    def start(self, timeout: float = 30.0) -> Containerd:
        self.root.mkdir(parents=True, exist_ok=True)
        config_path = self.root / "config.toml"
        config_path.write_text(self.config)
        # The shim is found next to containerd through PATH; runc is named in the config.
        env = {"PATH": f"{self.binary.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        argv = self.namespaces.wrap([str(self.binary), f"--config={config_path}", "--log-level=warn"])
        self.process = self.spawn("containerd", argv, self.log_path, env).start()
        wait_until(lambda: self._ctr("version").returncode == 0, timeout=timeout,
                   what=f"containerd to answer on {SOCKET} in the node's namespaces", processes=[self.process])
        log.info("containerd running (pid %d)", self.process.pid)
        return self

    def _ctr(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        argv = self.namespaces.wrap([str(self.ctr), f"--address={SOCKET}", f"--namespace={CRI_NAMESPACE}", *args])
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def import_image(self, archive: Path, name: str, timeout: float = 300.0) -> None:
        """Import an OCI archive as ``name`` (fully qualified, as kubelet asks for it).

        The archive's index tags its manifest with ``name``'s tag (``2.46.0``); ctr prefixes
        it with the repository, the way an image built elsewhere would be named.
        """
        proc = self._ctr(*import_args(archive, name), timeout=timeout)
        if proc.returncode != 0 or name not in self.images():
            raise ProviderError(f"importing {archive} into containerd as {name} failed: "
                                f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        log.info("imported image %s", name)

    def images(self) -> list[str]:
        proc = self._ctr("images", "list", "--quiet")
        return proc.stdout.split() if proc.returncode == 0 else []

    def image_digest(self, name: str) -> str | None:
        """The manifest digest containerd holds under ``name``, or None."""
        proc = self._ctr("images", "list", f"name=={name}")
        for line in proc.stdout.splitlines()[1:] if proc.returncode == 0 else []:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == name:
                return fields[2]
        return None

    def has_image(self, archive: Path, name: str) -> bool:
        """True if containerd already holds exactly this archive's image under ``name`` (a kept node)."""
        return self.image_digest(name) == archive_digest(archive)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=10.0)
            self.process = None


def import_args(archive: Path, name: str) -> list[str]:
    """``ctr`` arguments importing ``archive`` as ``name``: its index tags the manifest, ctr adds the repository."""
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:
        raise ValueError(f"image name {name!r} has no tag")
    return ["images", "import", f"--base-name={repository}", str(archive)]


def archive_digest(archive: Path) -> str | None:
    """The manifest digest an OCI archive's index names (what containerd reports once it is imported)."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("index.json")
            index = json.loads(member.read()) if member is not None else {}
    except (OSError, KeyError, tarfile.TarError, ValueError):
        return None
    manifests = index.get("manifests") or []
    return str(manifests[0]["digest"]) if manifests else None
