"""What a failed inner pytest run said, cut to the part that explains it."""

from __future__ import annotations

import re

_SECTIONS = re.compile(r"^=+ (ERRORS|FAILURES|short test summary info) =+$", re.M)


def explain(out: str, limit: int = 8000) -> str:
    """The inner run's errors, failures and short summary (its progress lines say nothing on a failure)."""
    match = _SECTIONS.search(out)
    text = out[match.start():] if match else out
    return text if len(text) <= limit else text[:limit // 2] + "\n[...]\n" + text[-limit // 2:]


_COUNT = re.compile(r"(\d+) (passed|failed|xfailed|xpassed|skipped|errors?|deselected)")


def outcomes(out: str) -> dict[str, int]:
    """The counts of the inner run's last summary line: ``{"passed": 1, "xfailed": 1, "deselected": 18}``."""
    lines = [line for line in out.splitlines() if line.startswith("=") and " in " in line and _COUNT.search(line)]
    return {kind: int(n) for n, kind in _COUNT.findall(lines[-1])} if lines else {}
