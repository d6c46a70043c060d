"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.local_ray import RAY_BIN, LocalRayCluster


@pytest.fixture(scope="session")
def two_ray_clusters() -> Iterator[tuple[LocalRayCluster, LocalRayCluster]]:
    """Two real local Ray heads with distinct ports and temp dirs, started together and stopped by PID."""
    if not RAY_BIN.exists() and shutil.which("ray") is None:
        pytest.skip("ray[serve] is not installed in this environment: run `make test` to install it")
    clusters = (LocalRayCluster("ray-a", 0), LocalRayCluster("ray-b", 1))
    try:
        for cluster in clusters:
            cluster.start()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda c: c.wait_ready(), clusters))
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()
