"""Real HTTP requests through the Gateway during an upgrade, bounded in count and time.

Each answer of the echo app names the Serve config version that served it, so
the requests show when traffic moves from the old cluster to the new one, and
whether any request failed on the way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import httpx

__all__ = ["RequestResult", "TrafficSender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestResult:
    t: float  # seconds on the recorder's clock (since recording began)
    ok: bool
    status: int | None
    version: str | None
    latency_ms: float
    error: str | None = None


class TrafficSender:
    """Sends GETs at a fixed rate to ``url`` until stopped, ``max_requests`` or ``max_seconds``."""

    def __init__(self, url: str, rate_hz: float = 5.0, max_requests: int = 5000, max_seconds: float = 1200.0,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.interval = 1.0 / rate_hz
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.results: list[RequestResult] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self, t0: float) -> None:
        """Start sending; ``t0`` is the recorder's ``time.monotonic()`` origin, so both share one clock."""
        self._t0 = t0
        self._thread = threading.Thread(target=self._run, name="gateway-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> list[RequestResult]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
        return self.results

    def _run(self) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set() and len(self.results) < self.max_requests:
                if time.monotonic() - started > self.max_seconds:
                    log.warning("traffic stopped after %.0fs (its bound)", self.max_seconds)
                    break
                self.results.append(self._one(client))
                self._stop.wait(self.interval)

    def _one(self, client: httpx.Client) -> RequestResult:
        sent = time.monotonic()
        try:
            response = client.get(self.url)
            latency = (time.monotonic() - sent) * 1000
            version = None
            if response.status_code == 200:
                body = response.json()
                version = str(body.get("version")) if isinstance(body, dict) else None
            ok = response.status_code == 200 and version is not None
            error = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
            return RequestResult(sent - self._t0, ok, response.status_code, version, latency, error)
        except (httpx.HTTPError, ValueError) as exc:
            latency = (time.monotonic() - sent) * 1000
            return RequestResult(sent - self._t0, False, None, None, latency, f"{type(exc).__name__}: {exc}")
