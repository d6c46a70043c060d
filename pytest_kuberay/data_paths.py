"""Where the files the plugin needs at run time live: manifests, Serve apps, toolchain go.mod files.

In a checkout they are the repo's top-level ``manifests/``, ``fixtures/serve_apps/`` and
``toolchain/``; an installed wheel carries them as the packages ``pytest_kuberay.data.*``
(``pyproject.toml`` maps the directories), so both are found the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["data_dir"]

_CHECKOUT = {"manifests": "manifests", "serve_apps": "fixtures/serve_apps", "toolchain": "toolchain"}


def data_dir(name: str) -> Path:
    """``manifests``, ``serve_apps`` or ``toolchain``: the installed package's copy, else the checkout's.

    The data directories carry no ``__init__.py``, so they are namespace packages: their directory is
    the import spec's search location (``importlib.resources.files`` gives a MultiplexedPath for
    them, which is not a filesystem path).
    """
    try:
        spec = importlib.util.find_spec(f"pytest_kuberay.data.{name}")
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location)
        if path.is_dir():
            return path
    return Path(__file__).resolve().parents[1] / _CHECKOUT[name]
