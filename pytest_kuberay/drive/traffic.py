"""Real HTTP requests through the Gateway during an upgrade, bounded in count and time.

What is sent is the user's: a :class:`TrafficSpec` per route (path, method, headers,
body) and a parser that tells which config answered. By default any 2xx counts as
success and answers carry no version; the echo app's parser reads its ``version``, so
the requests show when traffic moves from the old cluster to the new one.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

__all__ = ["ECHO_TRAFFIC", "RequestResult", "ResponseParser", "TrafficSender", "TrafficSpec", "echo_version_of"]

#: Which config answered a response (e.g. its version), or None when the answer does not say.
ResponseParser = Callable[[httpx.Response], "str | None"]


def echo_version_of(response: httpx.Response) -> str | None:
    """The echo app's answer: JSON with the ``version`` of the user_config that served it."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body["version"]) if isinstance(body, dict) and "version" in body else None


@dataclass(frozen=True)
class TrafficSpec:
    """One kind of request to send through the Gateway during an upgrade."""

    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | None = None
    #: Tells which config answered; None: any 2xx is a success and answers carry no version.
    parse: ResponseParser | None = None
    #: With a parser, a 2xx whose answer names no version is a failure (a wrong backend answered).
    require_version: bool = True

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"TrafficSpec path must start with '/', got {self.path!r}")


#: What the shipped suites send: GET / to the echo app, which names its version.
ECHO_TRAFFIC = TrafficSpec("/", parse=echo_version_of)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestResult:
    t: float  # seconds on the recorder's clock (since recording began)
    ok: bool
    status: int | None
    version: str | None
    latency_ms: float
    error: str | None = None
    route: str = "/"


class TrafficSender:
    """Sends requests at a fixed rate to the Gateway at ``base_url`` until stopped, ``max_requests`` or ``max_seconds``.

    With several specs (routes), requests take turns among them.
    """

    def __init__(self, base_url: str, specs: Sequence[TrafficSpec] = (ECHO_TRAFFIC,), rate_hz: float = 5.0,
                 max_requests: int = 5000, max_seconds: float = 1200.0, timeout: float = 10.0) -> None:
        if not specs:
            raise ValueError("TrafficSender needs at least one TrafficSpec")
        self.base_url = base_url.rstrip("/")
        self.specs = list(specs)
        self.interval = 1.0 / rate_hz
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.results: list[RequestResult] = []
        self.error: BaseException | None = None  # why the sending thread died, if it did
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self, t0: float) -> None:
        """Start sending; ``t0`` is the recorder's ``time.monotonic()`` origin, so both share one clock."""
        self._t0 = t0
        self._thread = threading.Thread(target=self._run, name="gateway-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> list[RequestResult]:
        """Stop and return the results; a thread that died is a failure to report, never a silent skip."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
        if self.error is not None:
            raise RuntimeError(f"the traffic thread died after {len(self.results)} requests: "
                               f"{type(self.error).__name__}: {self.error}") from self.error
        return self.results

    def _run(self) -> None:
        try:
            started = time.monotonic()
            specs = itertools.cycle(self.specs)
            with httpx.Client(timeout=self.timeout) as client:
                while not self._stop.is_set() and len(self.results) < self.max_requests:
                    if time.monotonic() - started > self.max_seconds:
                        log.warning("traffic stopped after %.0fs (its bound)", self.max_seconds)
                        break
                    self.results.append(self._one(client, next(specs)))
                    self._stop.wait(self.interval)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def _one(self, client: httpx.Client, spec: TrafficSpec) -> RequestResult:
        sent = time.monotonic()
        try:
            response = client.request(spec.method, self.base_url + spec.path, headers=dict(spec.headers),
                                      content=spec.body)
            latency = (time.monotonic() - sent) * 1000
            success = 200 <= response.status_code < 300
            version = spec.parse(response) if success and spec.parse is not None else None
            ok = success and (spec.parse is None or version is not None or not spec.require_version)
            error = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
            return RequestResult(sent - self._t0, ok, response.status_code, version, latency, error, spec.path)
        except httpx.HTTPError as exc:
            latency = (time.monotonic() - sent) * 1000
            return RequestResult(sent - self._t0, False, None, None, latency, f"{type(exc).__name__}: {exc}",
                                 spec.path)
