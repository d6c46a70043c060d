"""Build the local provider's binaries from Go modules, with no Docker and no release downloads.

etcd, Kubernetes, containerd, Traefik and the KubeRay operator are built from source through the Go module
proxy, the one channel that is always reachable where the tests run; the pins are the go.mod files in the
repo's ``toolchain/``. This package re-exports what the other layers and the tests use.
"""

from pytest_kuberay._support.cache import cache_root
from pytest_kuberay._support.toolchain.binaries import build_record_path
from pytest_kuberay._support.toolchain.cli import main
from pytest_kuberay._support.toolchain.components import ensure_component, kubernetes_source_dir
from pytest_kuberay._support.toolchain.crds import crd_dir
from pytest_kuberay._support.toolchain.operator import ensure_operator, operator_config_dir, source_tree_hash
from pytest_kuberay._support.toolchain.patches import KNOWN_PATCHES, SourcePatch, patch_pr4212
from pytest_kuberay._support.toolchain.recipes import (
    COMPONENTS,
    CONTROL_PLANE_COMPONENTS,
    GATEWAY_API_MODULE,
    INSTALL_COMPONENTS,
    MIN_GO,
    NODE_COMPONENTS,
    OPERATOR_BINARY,
    OPERATOR_MODULE,
    SERVED_OPERATOR_RELEASES,
    Component,
    OperatorVersion,
    component_version,
    go_directive,
    parse_operator_version,
    required_version,
    toolchain_dir,
)
from pytest_kuberay.errors import ToolchainError

__all__ = [
    "COMPONENTS",
    "CONTROL_PLANE_COMPONENTS",
    "GATEWAY_API_MODULE",
    "INSTALL_COMPONENTS",
    "KNOWN_PATCHES",
    "MIN_GO",
    "NODE_COMPONENTS",
    "OPERATOR_BINARY",
    "OPERATOR_MODULE",
    "SERVED_OPERATOR_RELEASES",
    "Component",
    "OperatorVersion",
    "SourcePatch",
    "ToolchainError",
    "build_record_path",
    "cache_root",
    "component_version",
    "crd_dir",
    "ensure_component",
    "ensure_operator",
    "go_directive",
    "kubernetes_source_dir",
    "main",
    "operator_config_dir",
    "parse_operator_version",
    "patch_pr4212",
    "required_version",
    "source_tree_hash",
    "toolchain_dir",
]
