"""What an upgrade is expected to do: the Serve config before and after, and the step sizes.

The workload layer writes it when it triggers an upgrade; the recorder carries
it to the invariants, which compare what clusters run against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["UpgradePlan"]


@dataclass(frozen=True)
class UpgradePlan:
    old_apps: dict[str, dict[str, Any]]  # app name -> app config before the upgrade
    new_apps: dict[str, dict[str, Any]]  # app name -> app config the upgrade rolls out
    max_surge_percent: int
    step_size_percent: int
    interval_seconds: int = 0
    labels: dict[str, str] = field(default_factory=dict)  # e.g. cluster_change, serve_change
