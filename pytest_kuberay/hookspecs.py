"""Hooks a conftest.py (or another plugin) may implement to extend pytest-kuberay."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from pytest_kuberay.known_bugs import KnownBug


def pytest_kuberay_known_bugs(config: pytest.Config) -> Iterable[KnownBug]:  # type: ignore[empty-body]
    """Return your own known bugs (``pytest_kuberay.known_bug(id, title, affected)``).

    A test marked ``@pytest.mark.kuberay_bug("<id>")`` is then a strict expected failure on the
    affected versions, exactly like the built-in bugs.
    """
