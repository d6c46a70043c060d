"""A recording as JSON (``timeline.json`` in the artifacts): what plots and reports read back."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kuberay.observe.timeline.steps import Timeline

__all__ = ["timeline_dict", "write_timeline_json"]


def timeline_dict(timeline: Timeline) -> dict[str, Any]:
    """Everything recorded, as plain JSON values (dataclasses as dicts, anything else by its repr)."""
    data = {
        "interval": timeline.interval,
        "reconcile_seconds": timeline.reconcile_seconds,
        "plan": _plain(timeline.plan),
        "initial_active": timeline.initial_active,
        "clusters_ever": timeline.clusters_ever,
        "ray_versions": dict(timeline.ray_versions),
        "markers": dict(timeline.markers),
        "writes": {k: list(v) for k, v in timeline.writes.items()},
        "steps": [
            {"index": s.index, "key": list(s.key), "start": s.start, "end": s.end, "phase": s.phase,
             "active_cluster": s.active_cluster, "pending_cluster": s.pending_cluster,
             "samples": len(s.samples)}
            for s in timeline.steps
        ],
        "config_changes": [_plain(c) for c in timeline.config_changes],
        "samples": [_plain(s) for s in timeline.samples],
        "requests": [_plain(r) for r in timeline.requests],
    }
    return json.loads(json.dumps(data, default=repr))  # ABSENT -> "<absent>", tuples -> lists


def write_timeline_json(timeline: Timeline, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timeline_dict(timeline), indent=1, default=repr))
    return path


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return obj
