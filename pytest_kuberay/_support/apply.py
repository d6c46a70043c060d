"""Server-side apply of manifests, the way ``kubectl apply --server-side`` does it.

Server-side apply is idempotent and reports field conflicts, so reinstalling a
different KubeRay version's CRDs over the old ones just works; ``dry_run`` lets
the kind path's manifests be checked against a real API server offline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_kuberay._support.yaml_io import load_all

__all__ = ["FIELD_MANAGER", "apply_manifests", "load_manifests"]

FIELD_MANAGER = "pytest-kuberay"
log = logging.getLogger(__name__)


def load_manifests(*paths: Path) -> list[dict[str, Any]]:
    """Every YAML document in the given files or directories (sorted), skipping empty ones."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            docs.extend(load_all(file.read_text()))
    return docs


def apply_manifests(dynamic: Any, manifests: Iterable[dict[str, Any]], dry_run: bool = False) -> list[str]:
    """Server-side apply each manifest with force; return ``kind/name`` of each applied object."""
    applied = []
    for manifest in manifests:
        resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        meta = manifest["metadata"]
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if dry_run:
            kwargs["dry_run"] = "All"
        resource_namespace = meta.get("namespace") if resource.namespaced else None
        dynamic.server_side_apply(resource, body=manifest, name=meta["name"], namespace=resource_namespace,
                                  **kwargs)
        applied.append(f"{manifest['kind']}/{meta['name']}")
        log.debug("applied %s%s", applied[-1], " (dry run)" if dry_run else "")
    return applied
