"""``eventually``: wait for a condition, and on timeout say what was awaited and what was last seen.

Built on tenacity. Every wait in the suites goes through here, so a stuck
upgrade fails with the last RayService status in the message rather than a
bare timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

__all__ = ["eventually", "wait_for"]

T = TypeVar("T")


_RAISED = object()


class _NotYet(Exception):
    def __init__(self, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


def eventually(
    observe: Callable[[], T],
    condition: Callable[[T], bool | str | None] = bool,
    *,
    timeout: float,
    interval: float = 1.0,
    description: str,
    show: Callable[[T], str] = repr,
) -> T:
    """Call ``observe`` until ``condition(value)`` holds; return that value.

    ``condition`` may return a bool, or a string explaining why it does not
    hold yet (an empty string or ``None`` means it holds). Exceptions from
    ``observe`` count as "not yet" and are shown if they are the last thing
    seen. On timeout an ``AssertionError`` names ``description``, the time
    waited, and the last value.
    """

    def attempt() -> T:
        try:
            value = observe()
        except AssertionError:
            raise
        except Exception as exc:
            raise _NotYet(_RAISED, f"{type(exc).__name__}: {exc}") from exc
        verdict = condition(value)
        if verdict is True or verdict is None or verdict == "":
            return value
        reason = verdict if isinstance(verdict, str) else "condition is false"
        raise _NotYet(value, reason)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_exception_type(_NotYet),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as err:
        last = err.last_attempt.exception()
        assert isinstance(last, _NotYet)
        seen = "nothing (observe raised)" if last.value is _RAISED else show(last.value)
        raise AssertionError(
            f"timed out after {timeout:g}s waiting for {description}: {last.reason}\nlast seen: {seen}"
        ) from None


def wait_for(observe: Callable[[], T], condition: Callable[[T], bool | str | None], *, timeout: float,
             description: str, show: Callable[[T], str] = repr, interval: float = 1.0) -> T:
    """``eventually`` for setup steps: a timeout is a :class:`ProviderError` (one readable line), not a test failure."""
    from pytest_kuberay.errors import ProviderError

    try:
        return eventually(observe, condition, timeout=timeout, interval=interval, description=description, show=show)
    except AssertionError as exc:
        raise ProviderError(str(exc)) from None
