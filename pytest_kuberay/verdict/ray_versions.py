"""Each Ray cluster must run the Ray version its image names: otherwise a verdict is about the wrong Ray."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["image_of", "ray_version_mismatches", "ray_version_of_image"]

_VERSION = re.compile(r"^(\d+\.\d+\.\d+)")


def ray_version_of_image(image: str) -> str | None:
    """``rayproject/ray:2.46.0-py311`` -> ``2.46.0``; None for tags that name no version (``latest``)."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    match = _VERSION.match(tag)
    return match.group(1) if match else None


def image_of(manifest: dict[str, Any]) -> str | None:
    """The head container's image of a RayService manifest (the one that runs the dashboard)."""
    try:
        containers = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
        return str(containers[0]["image"])
    except (KeyError, IndexError, TypeError):
        return None


def ray_version_mismatches(timeline: Any, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Clusters whose reported Ray version differs from their image's tag.

    The cluster the upgrade started on runs ``before``'s image; any other cluster runs ``after``'s.
    A cluster whose version was never read is a mismatch too: nothing would then prove the Ray version.
    """
    problems = []
    expected_before = ray_version_of_image(image_of(before) or "")
    expected_after = ray_version_of_image(image_of(after) or "")
    clusters = {c for s in timeline.samples for c, snap in s.snapshots.items() if snap.ok}
    for cluster in sorted(clusters):
        expected = expected_before if cluster == timeline.initial_active else expected_after
        if expected is None:
            continue
        seen = timeline.ray_versions.get(cluster)
        if seen != expected:
            problems.append(f"cluster {cluster!r} reports Ray {seen or '<unreadable>'}, its image names Ray {expected}")
    return problems
