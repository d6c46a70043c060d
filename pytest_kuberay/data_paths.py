"""Where the files the plugin needs at run time live: manifests, Serve apps, toolchain go.mod files.

In a checkout they are the repo's top-level ``manifests/``, ``fixtures/serve_apps/`` and
``toolchain/``; an installed wheel carries them as the packages ``pytest_kuberay.data.*``
(``pyproject.toml`` maps the directories), so both are found the same way.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["data_dir"]

_CHECKOUT = {"manifests": "manifests", "serve_apps": "fixtures/serve_apps", "toolchain": "toolchain"}


def data_dir(name: str) -> Path:
    """``manifests``, ``serve_apps`` or ``toolchain``: the installed package's copy, else the checkout's."""
    try:
        found = importlib.resources.files(f"pytest_kuberay.data.{name}")
        path = Path(str(found))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[1] / _CHECKOUT[name]
