"""YAML documents, parsed fast: libyaml's C parser, and a JSON copy of big documents in the user cache.

CRDs are megabytes of YAML: PyYAML's pure-Python parser spent about 17 CPU-seconds on one KubeRay
release's manifests during a run (profiled with py-spy on a 2-core machine), the C parser still
about 4 s. The same text parses to the same objects, so a big text's result is kept as JSON,
keyed by the text's hash, and read back in milliseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any

import yaml

from pytest_kuberay._support.cache import cache_root

__all__ = ["load_all"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Texts smaller than this are parsed every time (a JSON file would not save anything).
_CACHE_FROM_BYTES = 64 * 1024


def load_all(text: str) -> list[Any]:
    """Every non-empty document of ``text`` (safe loading only)."""
    if len(text) < _CACHE_FROM_BYTES:
        return _parse(text)
    path = cache_root() / "yaml" / f"{hashlib.sha256(text.encode()).hexdigest()}.json"
    with contextlib.suppress(OSError, ValueError):
        cached: list[Any] = json.loads(path.read_text())
        return cached
    docs = _parse(text)
    with contextlib.suppress(OSError, TypeError, ValueError):  # a cache that cannot be written just costs time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(docs))
        os.replace(tmp, path)
    return docs


def _parse(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]
