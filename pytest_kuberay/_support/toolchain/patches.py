"""Known upstream fixes applied to a release's source as a build step (``v1.5.0+pr4212``). Pure text edits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pytest_kuberay.errors import ToolchainError

_APPLY_TC_FUNC = re.compile(r"^func \(r \*RayServiceReconciler\) applyServeTargetCapacity\(", re.MULTILINE)
_CACHE_CALL = re.compile(r"^[ \t]*r\.cacheServeConfig\([^\n]*\)[ \t]*\n", re.MULTILINE)


def patch_pr4212(source: str) -> str:
    """Apply upstream PR 4212 (the fix for bug 4189, released in v1.5.1) to rayservice_controller.go.

    v1.5.0's ``applyServeTargetCapacity`` ends with ``r.cacheServeConfig(...)``, which caches the
    *spec* (new) Serve config under the active cluster's name at its first step-down, so its next
    step-down sends the new config. The fix removes that one call. We refuse to guess: the call
    must occur exactly once inside the function, or the build fails.
    """
    start = _APPLY_TC_FUNC.search(source)
    if start is None:
        raise ToolchainError(
            "PR 4212 build step: func (r *RayServiceReconciler) applyServeTargetCapacity not found "
            "in rayservice_controller.go; this source is not the one the patch was written for."
        )
    end = source.find("\n}\n", start.end())
    if end < 0:
        raise ToolchainError("PR 4212 build step: cannot find the end of applyServeTargetCapacity.")
    end += 1  # keep the function's closing brace line intact
    body = source[start.start() : end]
    calls = list(_CACHE_CALL.finditer(body))
    if len(calls) != 1:
        raise ToolchainError(
            f"PR 4212 build step: expected exactly one r.cacheServeConfig(...) call in "
            f"applyServeTargetCapacity, found {len(calls)}; this source is not the one the patch was "
            "written for (the fix may already be in it)."
        )
    call = calls[0]
    patched_body = body[: call.start()] + body[call.end() :]
    return source[: start.start()] + patched_body + source[end:]


@dataclass(frozen=True)
class SourcePatch:
    """A build step that applies one upstream PR to a release's module source."""

    pr: int
    path: str
    apply: Callable[[str], str]
    summary: str


KNOWN_PATCHES: dict[int, SourcePatch] = {
    4212: SourcePatch(
        4212,
        "controllers/ray/rayservice_controller.go",
        patch_pr4212,
        "do not cache the spec Serve config in applyServeTargetCapacity (fixes bug 4189)",
    ),
}
