"""Fixtures the plugin offers. Cluster, install and workload fixtures build on these."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_kuberay.settings import Settings

__all__ = ["kuberay_artifacts", "kuberay_settings"]


@pytest.fixture(scope="session")
def kuberay_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's resolved, immutable settings."""
    from pytest_kuberay.plugin import settings_of

    return settings_of(pytestconfig)


@pytest.fixture
def kuberay_artifacts(request: pytest.FixtureRequest, kuberay_settings: Settings) -> Path:
    """A directory for this test's artifacts (timeline JSON, plots, logs), named after the test."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", request.node.nodeid).strip("_")[:150]
    path = kuberay_settings.artifacts_dir / safe
    path.mkdir(parents=True, exist_ok=True)
    return path
