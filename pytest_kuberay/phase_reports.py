"""Each test's setup/call/teardown reports, kept in the item's stash so fixtures can see how the test went."""

from __future__ import annotations

import pytest

__all__ = ["REPORT_KEY", "failed_or_xfailed"]

#: item.stash[REPORT_KEY]["call"] is the call phase's report, once it ran.
REPORT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


def failed_or_xfailed(item: pytest.Item) -> bool:
    """True when the test's call failed or was an expected failure (both leave evidence worth keeping)."""
    report = item.stash.get(REPORT_KEY, {}).get("call")
    return report is not None and (report.failed or hasattr(report, "wasxfail"))
