"""Where a session's time goes: named phases timed as they run, written to ``phases.json`` at the end.

The time-to-verdict benchmark reads them, so its figures come from timestamps the code took,
not from guesses after the fact.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["PHASES", "Phase", "PhaseLog"]


@dataclass(frozen=True)
class Phase:
    name: str
    start: float  # seconds since the log began
    seconds: float


class PhaseLog:
    """Phases of one process, in the order they ended; thread-safe (images import in the background)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._phases: list[Phase] = []
        self._lock = threading.Lock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, started, time.monotonic())

    def add(self, name: str, started: float, ended: float) -> None:
        with self._lock:
            self._phases.append(Phase(name, round(started - self.t0, 3), round(ended - started, 3)))

    def mark(self, name: str) -> None:
        """A moment rather than a span (e.g. the first verdict)."""
        now = time.monotonic()
        self.add(name, now, now)

    @property
    def phases(self) -> list[Phase]:
        with self._lock:
            return list(self._phases)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"phases": [asdict(p) for p in self.phases],
                                    "total": round(time.monotonic() - self.t0, 3)}, indent=1) + "\n")
        return path


#: The process's phase log (a pytest session is one process).
PHASES = PhaseLog()
