"""The known-bug registry: which versions a bug affects, and the errors for bad ids and ranges."""

from __future__ import annotations

import pytest

from pytest_kuberay.errors import SettingsError
from pytest_kuberay.known_bugs import KNOWN_BUGS, lookup, parse_affected
from pytest_kuberay.versions import parse_version


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("v1.5.0", True),
        ("v1.5.0+pr4212", False),
        ("v1.5.1", False),
        ("v1.5.2", False),
        ("v1.6.0", False),
        ("v1.7.0", False),
    ],
)
def test_4189_affects_only_unpatched_v150(version: str, affected: bool) -> None:
    assert lookup("4189").affects(parse_version(version)) is affected


def test_custom_range_overrides_the_registered_one() -> None:
    bug = lookup("4189")
    wider = parse_affected(">=1.5.0,<1.6.0")
    assert bug.affects(parse_version("v1.5.1"), wider)
    assert bug.affects(parse_version("v1.5.2"), wider)
    assert not bug.affects(parse_version("v1.6.0"), wider)
    # the fix still wins over a custom range
    assert not bug.affects(parse_version("v1.5.1+pr4212"), wider)


def test_lookup_accepts_an_int_id() -> None:
    assert lookup(4189) is KNOWN_BUGS["4189"]  # type: ignore[arg-type]


def test_reason_and_url_name_the_issue() -> None:
    bug = lookup("4189")
    assert bug.url == "https://github.com/ray-project/kuberay/issues/4189"
    reason = bug.xfail_reason(parse_version("v1.5.0"))
    assert "#4189" in reason
    assert "v1.5.0" in reason
    assert bug.url in reason


def test_unknown_id_lists_registered_ids() -> None:
    with pytest.raises(SettingsError) as excinfo:
        lookup("1")
    message = str(excinfo.value)
    assert "unknown bug id '1'" in message
    assert "registered ids: " + ", ".join(sorted(KNOWN_BUGS)) in message


@pytest.mark.parametrize("text", ["1.5.0", "banana", ">=1.5,<"])
def test_invalid_range_is_a_settings_error(text: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_affected(text)
    assert repr(text) in str(excinfo.value)
    assert "'>=1.5.0,<1.5.1'" in str(excinfo.value)
