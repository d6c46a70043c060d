"""The per-user cache: built binaries and images, and anything slow to derive that never changes."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """Where binaries and build logs are kept: they take minutes to build, so they outlive a test run.

    ``$PYTEST_KUBERAY_CACHE``, else ``$XDG_CACHE_HOME/pytest-kuberay``, else ``~/.cache/pytest-kuberay``.
    """
    explicit = os.environ.get("PYTEST_KUBERAY_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "pytest-kuberay"
    return Path.home() / ".cache" / "pytest-kuberay"
