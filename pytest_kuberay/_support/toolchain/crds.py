"""CRD directories to apply (KubeRay's, Gateway API's), taken from the Go module cache."""

from __future__ import annotations

from pathlib import Path

from pytest_kuberay._support.toolchain.go import module_info
from pytest_kuberay._support.toolchain.operator import operator_module_dir
from pytest_kuberay._support.toolchain.recipes import (
    GATEWAY_API_MODULE,
    go_module_dir,
    parse_operator_version,
    required_version,
)
from pytest_kuberay.errors import ToolchainError


def crd_dir(kind: str, version: str | None = None) -> Path:
    """Directory of CRD YAMLs to apply, taken from the Go module cache (downloaded when missing).

    * ``kind="kuberay"``: ray-operator@<release>/config/crd/bases (for ``v1.5.0+pr4212``, v1.5.0's:
      the PR does not touch the API).
    * ``kind="gateway-api"``: sigs.k8s.io/gateway-api@<version>/config/crd/standard; ``version``
      defaults to the pin in toolchain/gateway-api/go.mod.
    """
    if kind == "kuberay":
        if not version:
            raise ToolchainError("crd_dir('kuberay', version) needs the operator version, e.g. 'v1.5.1'.")
        path = operator_module_dir(parse_operator_version(version).release) / "config" / "crd" / "bases"
    elif kind in ("gateway-api", "gateway"):
        if not version:
            text = (go_module_dir("gateway-api") / "go.mod").read_text()
            version = required_version(text, GATEWAY_API_MODULE)
            if version is None:
                raise ToolchainError(f"toolchain/gateway-api/go.mod does not require {GATEWAY_API_MODULE}.")
        info = module_info(GATEWAY_API_MODULE, version)
        if "Error" in info or not info.get("Dir"):
            raise ToolchainError(
                f"Gateway API {version} is not available from the Go module proxy "
                f"({str(info.get('Error', '')).splitlines()[0] if info.get('Error') else 'no Dir'}); "
                "the pinned version is in toolchain/gateway-api/go.mod."
            )
        path = Path(str(info["Dir"])) / "config" / "crd" / "standard"
    else:
        raise ToolchainError(f"unknown CRD kind {kind!r}; use 'kuberay' or 'gateway-api'.")
    if not path.is_dir():
        raise ToolchainError(f"CRD directory {path} does not exist in the module.")
    return path
