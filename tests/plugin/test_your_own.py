"""Bring your own: bugs of your own (marker or conftest hook), your RayService pair's options and their errors."""

from __future__ import annotations

import pytest

from pytest_kuberay.settings import OPTIONS

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR


@pytest.fixture(autouse=True)
def _no_kuberay_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)


OWN_BUG_TESTS = """
import pytest
from pytest_kuberay import InvariantViolationError

@pytest.mark.kuberay_bug("team-42")
def test_registered_by_the_conftest(kuberay_version):
    raise InvariantViolationError("our RayService lost traffic at promotion")

@pytest.mark.kuberay_bug("team-43", affected=">=1.5.0,<1.6.0", title="our app's route vanishes")
def test_declared_on_the_marker(kuberay_version):
    raise InvariantViolationError("route gone")
"""

OWN_BUG_CONFTEST = """
from pytest_kuberay import known_bug

def pytest_kuberay_known_bugs(config):
    return [known_bug("team-42", "promotion drops requests", ">=1.5.0,<1.5.1", link="https://example.com/42")]
"""


def test_your_own_bugs_are_strict_xfails_where_they_apply(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OWN_BUG_CONFTEST)
    pytester.makepyfile(OWN_BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1,v1.6.2", "-rxX")
    # team-42 affects v1.5.0 only: xfail there, a real failure elsewhere; team-43 affects v1.5.x
    result.assert_outcomes(xfailed=3, failed=3)
    out = result.stdout.str()
    assert "KubeRay bug #team-42 affects v1.5.0: promotion drops requests (https://example.com/42)" in out
    assert "KubeRay bug #team-43 affects v1.5.1: our app's route vanishes" in out
    assert "bug team-42 on v1.5.1: FOUND on a version the registry calls unaffected" in out


def test_a_conftest_may_not_redefine_a_built_in_bug(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
from pytest_kuberay import known_bug

def pytest_kuberay_known_bugs(config):
    return [known_bug("4189", "something else", ">=1.0.0")]
""")
    pytester.makepyfile(OWN_BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*bug id '4189' is already registered*pick another id*"])


def test_an_unknown_bug_without_affected_and_title_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
import pytest

@pytest.mark.kuberay_bug("nope")
def test_it(kuberay_version):
    pass
""")
    result = pytester.runpytest("--kuberay-version=v1.5.0")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown bug id 'nope'*pytest_kuberay_known_bugs hook*affected= and title=*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--kuberay-rayservice={mine}"], "*--kuberay-rayservice and --kuberay-upgrade-to go together*"),
    (["--kuberay-rayservice=/no/such.yaml", "--kuberay-upgrade-to={mine}"], "*--kuberay-rayservice*/no/such.yaml*"),
    (["--kuberay-apps=/no/such/dir"], "*--kuberay-apps: /no/such/dir is not a directory*"),
    (["--kuberay-traffic-path=fruit"], "*--kuberay-traffic-path: routes must start with '/'*"),
    (["--kuberay-operator-image=not an image"], "*--kuberay-operator-image*is not an image reference*"),
])
def test_your_rayservice_options_reject_bad_values_in_one_line(pytester: pytest.Pytester, args: list[str],
                                                               message: str) -> None:
    mine = pytester.makefile(".yaml", mine="kind: RayService\n")
    result = pytester.runpytest(*[a.format(mine=mine) for a in args])
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_your_pair_replaces_the_echo_shapes_in_the_shipped_suite(pytester: pytest.Pytester) -> None:
    mine = pytester.makefile(".yaml", mine="kind: RayService\n", mine_v2="kind: RayService\n")
    result = pytester.runpytest("--pyargs", "pytest_kuberay.suites.incremental_upgrade", "--collect-only", "-q",
                                f"--kuberay-rayservice={mine.parent / 'mine.yaml'}",
                                f"--kuberay-upgrade-to={mine.parent / 'mine_v2.yaml'}", "--kuberay-version=v1.5.0")
    out = result.stdout.str()
    assert "[yours-v1.5.0]" in out and "surge20" not in out, out
