"""``eventually``: returns once the condition holds; on timeout says what it waited for and last saw."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_kuberay._support.waiting import eventually


def counter(*values: Any) -> Callable[[], Any]:
    """Returns ``values`` one per call (raising those that are exceptions), then repeats the last."""
    it: Iterator[Any] = iter(values)
    last: list[Any] = [None]

    def observe() -> Any:
        last[0] = next(it, last[0])
        if isinstance(last[0], Exception):
            raise last[0]
        return last[0]

    return observe


def test_returns_the_value_once_the_condition_holds() -> None:
    observe = counter(1, 2, 3, 4)
    assert eventually(observe, lambda v: v >= 3, timeout=5, interval=0.01, description="three") == 3


def test_default_condition_is_truthiness() -> None:
    assert eventually(counter(0, "", "ready"), timeout=5, interval=0.01, description="ready") == "ready"


@pytest.mark.parametrize("holds", [True, None, ""])
def test_true_none_and_empty_string_mean_it_holds(holds: object) -> None:
    assert eventually(lambda: 7, lambda _: holds, timeout=1, interval=0.01, description="x") == 7  # type: ignore[arg-type,return-value]


def test_exceptions_from_observe_count_as_not_yet() -> None:
    observe = counter(ConnectionError("refused"), KeyError("status"), {"ready": True})
    assert eventually(observe, lambda v: v["ready"], timeout=5, interval=0.01, description="ready") == {
        "ready": True
    }


def test_timeout_names_description_reason_and_last_value() -> None:
    observe = counter({"tc": 20}, {"tc": 40})
    start = time.monotonic()
    with pytest.raises(AssertionError) as excinfo:
        eventually(observe, lambda v: "" if v["tc"] == 100 else f"pending TC is {v['tc']}",
                   timeout=0.3, interval=0.05, description="the pending cluster at full capacity")
    assert time.monotonic() - start < 2
    message = str(excinfo.value)
    assert message.startswith("timed out after 0.3s waiting for the pending cluster at full capacity: ")
    assert "pending TC is 40" in message
    assert "last seen: {'tc': 40}" in message


def test_false_condition_has_a_generic_reason_and_custom_show() -> None:
    with pytest.raises(AssertionError) as excinfo:
        eventually(lambda: [1, 2], lambda v: len(v) > 5, timeout=0.1, interval=0.02, description="six items",
                   show=lambda v: f"{len(v)} items")
    assert "waiting for six items: condition is false\nlast seen: 2 items" in str(excinfo.value)


def test_timeout_after_exceptions_shows_the_exception() -> None:
    with pytest.raises(AssertionError) as excinfo:
        eventually(counter(ConnectionError("refused")), timeout=0.1, interval=0.02, description="the API")
    message = str(excinfo.value)
    assert "waiting for the API: ConnectionError: refused" in message
    assert "last seen: nothing (observe raised)" in message


def test_a_last_value_of_none_is_shown_as_none() -> None:
    """observe returned None (e.g. no pending cluster yet): that is a value, not an exception."""
    with pytest.raises(AssertionError) as excinfo:
        eventually(lambda: None, lambda v: v is not None, timeout=0.1, interval=0.02,
                   description="a pending cluster")
    message = str(excinfo.value)
    assert "last seen: None" in message
    assert "observe raised" not in message


def test_assertion_errors_from_observe_propagate_at_once() -> None:
    calls: list[int] = []

    def observe() -> int:
        calls.append(1)
        raise AssertionError("the RayService was deleted")

    with pytest.raises(AssertionError, match="the RayService was deleted"):
        eventually(observe, timeout=5, interval=0.01, description="x")
    assert len(calls) == 1
