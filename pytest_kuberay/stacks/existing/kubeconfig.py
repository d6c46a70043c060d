"""Which kubeconfig the existing provider uses, and the one-context copy the operator on the host reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_kuberay.errors import ProviderError

__all__ = ["kubeconfig_path", "minified_kubeconfig"]


def kubeconfig_path(explicit: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--kuberay-kubeconfig``, else the first file of ``$KUBECONFIG``, else ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    for entry in env.get("KUBECONFIG", "").split(os.pathsep):
        if entry and Path(entry).expanduser().is_file():
            return Path(entry).expanduser()
    default = Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"
    if default.is_file():
        return default
    raise ProviderError("--kuberay-provider=existing needs a kubeconfig: pass --kuberay-kubeconfig=FILE, or set "
                        "KUBECONFIG, or create ~/.kube/config")


def minified_kubeconfig(config: Mapping[str, Any], context: str | None) -> dict[str, Any]:
    """Only ``context`` (default: the current one) with its cluster and user, as the current context.

    For the operator run on the host, which reads the current context only.
    """
    name = context or config.get("current-context")
    contexts = {c["name"]: c for c in config.get("contexts") or []}
    if name not in contexts:
        raise ProviderError(f"kubeconfig has no context {name!r} (contexts: {', '.join(sorted(contexts)) or 'none'})")
    ctx = contexts[name]["context"]
    clusters = [c for c in config.get("clusters") or [] if c["name"] == ctx.get("cluster")]
    users = [u for u in config.get("users") or [] if u["name"] == ctx.get("user")]
    return {"apiVersion": "v1", "kind": "Config", "current-context": name, "contexts": [contexts[name]],
            "clusters": clusters, "users": users, "preferences": {}}
