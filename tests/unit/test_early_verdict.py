"""A recording ends early only once every bug its tests expect shows, checked twice in a row."""

from __future__ import annotations

import pytest

from pytest_kuberay.known_bugs import BUG_KEY, KNOWN_BUGS, BugVerdict, known_bug
from pytest_kuberay.recorded import verdict_check
from pytest_kuberay.verdict.early import STEP_INVARIANTS, bugs_confirmed
from pytest_kuberay.versions import parse_version
from tests.unit.test_invariants import GOOD_KEYS, upgrade

BUG_4189 = KNOWN_BUGS["4189"]
BUG_4717 = KNOWN_BUGS["4717"]
# 4189 as it shows: from the second active step-down on, the active cluster runs the new config
WITH_4189 = upgrade(GOOD_KEYS, {(60, 40, 40): {"active_v": "v2"}})
CLEAN = upgrade(GOOD_KEYS)


def test_every_bug_signature_names_a_known_invariant() -> None:
    # a typo in a signature would silently disable the early end for that bug
    whole_recording = {"no_write_churn", "no_operator_panics", "invalid_options_rejected", "upgrade_progresses",
                       "active_cluster_kept", "requests_recover", "active_apps_restored"}
    for bug in KNOWN_BUGS.values():
        for sig in bug.signature:
            assert sig.invariant in STEP_INVARIANTS or sig.invariant in whole_recording, (bug.id, sig.invariant)


def test_a_bug_that_shows_ends_the_recording_on_the_second_check() -> None:
    check = bugs_confirmed([BUG_4189])
    assert check is not None
    assert check(WITH_4189) is False
    assert check(WITH_4189) is True


def test_a_clean_recording_never_ends_early_and_a_gap_restarts_the_count() -> None:
    check = bugs_confirmed([BUG_4189])
    assert check is not None
    assert [check(CLEAN) for _ in range(3)] == [False, False, False]
    assert [check(WITH_4189), check(CLEAN), check(WITH_4189), check(WITH_4189)] == [False, False, False, True]


def test_the_violation_must_match_the_signature_not_just_the_invariant() -> None:
    # 4717 needs an operator restart before the violation: without the marker it is not 4717
    check = bugs_confirmed([BUG_4717])
    assert check is not None
    assert [check(WITH_4189) for _ in range(3)] == [False, False, False]
    WITH_4189.markers["operator-restart"] = 0.0
    try:
        assert [check(WITH_4189) for _ in range(2)] == [False, True]
    finally:
        del WITH_4189.markers["operator-restart"]


def test_bugs_judged_over_the_whole_recording_never_end_it_early() -> None:
    assert bugs_confirmed([KNOWN_BUGS["gateway-churn"]]) is None
    assert bugs_confirmed([known_bug("mine", "no signature", ">=1.5.0")]) is None
    assert bugs_confirmed([]) is None
    assert bugs_confirmed([BUG_4189, KNOWN_BUGS["gateway-churn"]]) is None


class _Item:
    """A collected test as verdict_check sees it: only its stash."""

    def __init__(self, bug_id: str | None, expected: bool = True) -> None:
        self.stash = pytest.Stash()
        if bug_id is not None:
            self.stash[BUG_KEY] = BugVerdict(KNOWN_BUGS[bug_id], parse_version("v1.5.0"), expected)


def test_only_tests_that_all_expect_a_bug_let_their_recording_end_early() -> None:
    assert verdict_check([_Item("4189")]) is not None  # make repro: the 4189 test alone
    assert verdict_check([_Item("4189"), _Item(None)]) is None  # a plain test judges the whole upgrade
    assert verdict_check([_Item("4189"), _Item("4189", expected=False)]) is None  # a version it does not affect
    assert verdict_check([]) is None
