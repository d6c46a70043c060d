"""The one failure a known bug may be: an upgrade broke an invariant (never a timeout or a crash)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kuberay.observe.timeline.steps import Timeline

__all__ = ["InvariantViolationError"]


class InvariantViolationError(AssertionError):
    """An upgrade broke an invariant. Known-bug xfails accept only this, never a timeout or a crash."""

    #: The name pytest prints in failure lines (and tests and users match): the public one, not this file's.
    __module__ = "pytest_kuberay.observe.timeline"

    def __init__(self, message: str, violations: Sequence[Any] = (), timeline: Timeline | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations)
        self.timeline = timeline  # the recording, so a known bug's signature can be matched against it

    @classmethod
    def raise_if(cls, violations: Sequence[Any], timeline: Timeline | None = None) -> None:
        """Fail with every violation (the first one first), or return when there is none."""
        if not violations:
            return
        shown = "\n\n".join(str(v) for v in violations[:5])
        more = f"\n\n... and {len(violations) - 5} more" if len(violations) > 5 else ""
        raise cls(f"{len(violations)} invariant violation(s):\n\n{shown}{more}", violations, timeline)
