"""What the local provider builds and at which version: component recipes, go.mod pins, operator labels.

Pure data plus reading the repo's ``toolchain/<component>/go.mod`` files; nothing here runs Go.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kuberay._support.toolchain.patches import KNOWN_PATCHES
from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.errors import ToolchainError

#: Oldest Go that builds every module here (traefik v3.6, etcd v3.6.14 and ray-operator v1.6 say ``go 1.25``).
MIN_GO = "1.25"

OPERATOR_MODULE = "github.com/ray-project/kuberay/ray-operator"
#: Name ``go install`` gives the operator binary (the module's last path element).
OPERATOR_BINARY = "ray-operator"

#: Operator releases the Go module proxy served and that built here with Go 1.26 (see toolchain/VERSIONS.md).
#: v1.5.2 and v1.7.0 are refused by the proxy; other versions are still tried when asked for.
SERVED_OPERATOR_RELEASES: tuple[str, ...] = ("v1.5.0", "v1.5.1", "v1.6.0", "v1.6.1", "v1.6.2")

GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"


@dataclass(frozen=True)
class Component:
    """A binary built from one of the repo's ``toolchain/<module_dir>/go.mod`` modules."""

    name: str
    module_dir: str
    package: str
    #: The required module whose version names the binary (e.g. k8s.io/kubernetes v1.34.4).
    version_module: str
    #: Arguments that print the version, for sanity checks.
    version_args: tuple[str, ...] = ("--version",)
    extra_ldflags: tuple[str, ...] = field(default=())
    #: Go build tags (containerd: leave out snapshotters that need cgo or kernel features we do not use).
    tags: tuple[str, ...] = field(default=())
    #: Binaries that must sit in one directory (CNI plugins: containerd's ``bin_dirs``) share this name.
    group: str | None = None
    #: The binary's file name when it differs from the component name.
    binary: str | None = None

    @property
    def cache_dir_name(self) -> str:
        """Directory under ``bin/`` that holds this binary's versions."""
        return self.group or self.name

    @property
    def file_name(self) -> str:
        return self.binary or self.name


KUBE_MODULE = "k8s.io/kubernetes"
_CONTAINERD = "github.com/containerd/containerd/v2"
#: Snapshotters we never use that would need cgo or extra kernel modules (as containerd's own static builds).
_CONTAINERD_TAGS = ("no_btrfs", "no_devmapper", "no_zfs", "no_aufs")
_CNI = "github.com/containernetworking/plugins"

COMPONENTS: dict[str, Component] = {
    "etcd": Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    "kube-apiserver": Component("kube-apiserver", "kubernetes", f"{KUBE_MODULE}/cmd/kube-apiserver", KUBE_MODULE),
    "kube-controller-manager": Component(
        "kube-controller-manager", "kubernetes", f"{KUBE_MODULE}/cmd/kube-controller-manager", KUBE_MODULE
    ),
    "kube-scheduler": Component("kube-scheduler", "kubernetes", f"{KUBE_MODULE}/cmd/kube-scheduler", KUBE_MODULE),
    "traefik": Component(
        "traefik",
        "traefik",
        "github.com/traefik/traefik/v3/cmd/traefik",
        "github.com/traefik/traefik/v3",
        version_args=("version",),
    ),
    # The real node: kubelet and kube-proxy from the same Kubernetes module as the control plane.
    "kubelet": Component("kubelet", "kubernetes", f"{KUBE_MODULE}/cmd/kubelet", KUBE_MODULE),
    "kube-proxy": Component("kube-proxy", "kubernetes", f"{KUBE_MODULE}/cmd/kube-proxy", KUBE_MODULE),
    **{
        name: Component(
            name,
            "containerd",
            f"{_CONTAINERD}/cmd/{name}",
            _CONTAINERD,
            version_args=("--version",) if name != "ctr" else ("version",),
            extra_ldflags=(f"-X {_CONTAINERD}/version.Version={{version}}",),
            tags=_CONTAINERD_TAGS,
            group="containerd",
        )
        for name in ("containerd", "containerd-shim-runc-v2", "ctr")
    },
    **{
        name: Component(
            name,
            "cni-plugins",
            f"{_CNI}/plugins/{kind}/{name}",
            _CNI,
            version_args=(),
            group="cni-plugins",
        )
        for kind, name in (("main", "bridge"), ("ipam", "host-local"), ("meta", "portmap"), ("main", "loopback"))
    },
    "coredns": Component("coredns", "coredns", "github.com/coredns/coredns", "github.com/coredns/coredns",
                         version_args=("-version",)),
    # Renders the operator's release manifests (ray-operator/config/default) for an in-cluster install.
    "kustomize": Component("kustomize", "kustomize", "sigs.k8s.io/kustomize/kustomize/v5",
                           "sigs.k8s.io/kustomize/kustomize/v5", version_args=("version",),
                           extra_ldflags=("-X sigs.k8s.io/kustomize/api/provenance.version={version}",)),
}

#: Components of the control plane and gateway, and of the real node (``make toolchain`` builds all).
CONTROL_PLANE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "traefik")
NODE_COMPONENTS = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr",
                   "bridge", "host-local", "portmap", "loopback", "coredns")
#: Tools for installing into a cluster.
INSTALL_COMPONENTS = ("kustomize",)


def toolchain_dir() -> Path:
    """The repo's ``toolchain/`` directory holding one go.mod per component.

    ``$PYTEST_KUBERAY_TOOLCHAIN`` overrides it, for an installed package that is not run from a checkout.
    """
    explicit = os.environ.get("PYTEST_KUBERAY_TOOLCHAIN")
    if explicit:
        return Path(explicit).expanduser()
    return data_dir("toolchain")


def go_module_dir(subdir: str) -> Path:
    path = toolchain_dir() / subdir
    if not (path / "go.mod").is_file():
        raise ToolchainError(
            f"{path / 'go.mod'} not found: run from a pytest-kuberay checkout, "
            "or set PYTEST_KUBERAY_TOOLCHAIN to its toolchain/ directory."
        )
    return path


def required_version(go_mod_text: str, module: str) -> str | None:
    """The version a go.mod requires of ``module`` (single-line or block ``require``), or None."""
    pattern = rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v[^\s/]+)"
    match = re.search(pattern, go_mod_text, re.MULTILINE)
    return match.group(1) if match else None


def go_directive(go_mod_text: str) -> str | None:
    """The ``go 1.x`` line of a go.mod, which is the oldest Go that builds it."""
    match = re.search(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", go_mod_text, re.MULTILINE)
    return match.group(1) if match else None


def component_version(name: str) -> str:
    """The version of a component, as pinned by its go.mod (it names the cache directory)."""
    comp = component(name)
    text = (go_module_dir(comp.module_dir) / "go.mod").read_text()
    version = required_version(text, comp.version_module)
    if version is None:
        raise ToolchainError(f"toolchain/{comp.module_dir}/go.mod does not require {comp.version_module}.")
    return version


def component(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise ToolchainError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}.") from None


_OPERATOR_VERSION = re.compile(r"^(v\d+\.\d+\.\d+)(?:\+pr(\d+))?$")


@dataclass(frozen=True)
class OperatorVersion:
    """An operator version label: a release tag, optionally with one known upstream PR applied."""

    release: str
    pr: int | None = None

    @property
    def label(self) -> str:
        """The full version string, used as the cache directory name."""
        return self.release if self.pr is None else f"{self.release}+pr{self.pr}"

    def __str__(self) -> str:
        return self.label


def parse_operator_version(version: str) -> OperatorVersion:
    """Parse ``v1.5.0`` or ``v1.5.0+pr4212``; anything else is a user error with the accepted forms."""
    match = _OPERATOR_VERSION.match(version.strip())
    if not match:
        raise ToolchainError(
            f"operator version {version!r} is not of the form vX.Y.Z or vX.Y.Z+prNNNN; "
            f"releases served by the Go proxy: {', '.join(SERVED_OPERATOR_RELEASES)}; "
            f"patched builds: {', '.join(f'v1.5.0+pr{n}' for n in KNOWN_PATCHES)}."
        )
    release, pr = match.group(1), match.group(2)
    if pr is not None and int(pr) not in KNOWN_PATCHES:
        raise ToolchainError(
            f"no build step is known for upstream PR {pr} (in {version!r}); known PRs: "
            f"{', '.join(str(n) for n in KNOWN_PATCHES)}."
        )
    return OperatorVersion(release, int(pr) if pr is not None else None)


def go_version_tuple(text: str) -> tuple[int, ...]:
    """``go1.26.8`` / ``1.25.0`` / ``1.25`` -> (1, 26, 8) etc.; pre-release suffixes are ignored."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return (0,)
    return tuple(int(part) for part in match.groups(default="0"))
