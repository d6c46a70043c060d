"""The plugin as pytest sees it: options, usage errors, version parametrization, known bugs, summary.

The plugin is loaded through its ``pytest11`` entry point (the package is installed), never with
``-p``; ``test_entry_point_loads_the_plugin`` proves that in a fresh interpreter.
"""

from __future__ import annotations

import re

import pytest

from pytest_kuberay.known_bugs import KNOWN_BUGS
from pytest_kuberay.settings import OPTIONS

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

BUG_TESTS = """
import pytest
from pytest_kuberay import InvariantViolationError

@pytest.mark.kuberay_bug("4189")
def test_fails(kuberay_version):
    raise InvariantViolationError("the active cluster's config changed")

@pytest.mark.kuberay_bug("4189")
def test_passes(kuberay_version):
    pass
"""


@pytest.fixture(autouse=True)
def _no_kuberay_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer environment must not leak PYTEST_KUBERAY_* into the runs under test."""
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)


def kuberay_group(help_text: str) -> str:
    """The lines of the ``KubeRay conformance`` option group in ``--help``, up to the next group."""
    match = re.search(r"^KubeRay conformance \(pytest-kuberay\):\n(.*?)(?=^\S)", help_text, re.M | re.S)
    assert match, "no 'KubeRay conformance (pytest-kuberay):' group in --help"
    return match.group(1)


def test_entry_point_loads_the_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    group = kuberay_group(result.stdout.str())
    for option in OPTIONS:
        assert option.flag in group, f"{option.flag} is not in the kuberay group"
        assert option.ini in group and option.env in group
    assert result.stdout.str().count(OPTIONS[0].flag + "=") == 1  # in one group only


def test_ini_keys_and_markers_are_registered(pytester: pytest.Pytester) -> None:
    help_text = pytester.runpytest("--help").stdout.str()
    for option in OPTIONS:
        assert re.search(rf"^  {option.ini} \(", help_text, re.M), f"ini key {option.ini} missing"
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.kuberay_bug(id, affected=None, title=None, link=None)" in markers
    assert "@pytest.mark.kuberay_min_version(version, reason)" in markers


@pytest.mark.parametrize(
    ("args", "env", "start"),
    [
        (["--kuberay-version=v1.5.0,v9.9.9"], None, "ERROR: --kuberay-version: unknown KubeRay release v9.9.9"),
        (["--kuberay-provider=minikube"], None, "ERROR: --kuberay-provider: unknown provider 'minikube'"),
        (["--kuberay-timeout-scale=0"], None, "ERROR: --kuberay-timeout-scale: expected a number"),
        ([], "bogus", "ERROR: --kuberay-version: not a KubeRay version (got 'bogus')"),
    ],
    ids=["version", "provider", "timeout-scale", "env-version"],
)
def test_bad_settings_are_one_usage_error_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: str | None, start: str
) -> None:
    if env is not None:
        monkeypatch.setenv("PYTEST_KUBERAY_VERSION", env)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(start)
    assert "Example" in errors[0]


def test_each_version_is_a_parameter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_kuberay import KubeRayVersion

        def test_version(kuberay_version):
            assert isinstance(kuberay_version, KubeRayVersion)
            assert kuberay_version.label in ("v1.5.0", "v1.5.1")
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*::test_version[[]v1.5.0[]] PASSED*", "*::test_version[[]v1.5.1[]] PASSED*"])
    result.stdout.fnmatch_lines(["kuberay: versions v1.5.0, v1.5.1; provider auto; artifacts *"])


def test_tests_without_the_fixture_or_marker_are_not_parametrized(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_plain PASSED*"])


def test_known_bug_is_a_strict_xfail_on_affected_versions_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bug=BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1", "-rxXf")
    result.assert_outcomes(xfailed=1, failed=2, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "XFAIL test_bug.py::test_fails[[]v1.5.0[]] - KubeRay bug #4189 affects v1.5.0: *issues/4189)",
        "FAILED test_bug.py::test_passes[[]v1.5.0[]] - [[]XPASS(strict)[]] KubeRay bug #4189*",
        "FAILED test_bug.py::test_fails[[]v1.5.1[]] - pytest_kuberay.observe.timeline.Inva*",
    ])
    result.stdout.no_fnmatch_line("FAILED test_bug.py::test_passes[[]v1.5.1[]]*")  # the -rf line a failure gives


def test_a_reproduced_bug_alone_passes_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bug=BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0", "-k", "test_fails")
    result.assert_outcomes(xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_a_bug_that_does_not_reproduce_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bug=BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0", "-k", "test_passes")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    unaffected = pytester.runpytest("--kuberay-version=v1.5.1", "-k", "test_passes")
    unaffected.assert_outcomes(passed=1)
    assert unaffected.ret == pytest.ExitCode.OK


def test_ignore_known_bugs_makes_plain_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bug=BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0", "--kuberay-ignore-known-bugs")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*bug 4189 on v1.5.0: FOUND on a version the registry calls unaffected*"])


def test_patched_version_is_not_affected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bug=BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0+pr4212", "-v")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*::test_passes[[]v1.5.0+pr4212[]] PASSED*"])


def test_marked_test_without_the_fixture_is_parametrized(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_kuberay import InvariantViolationError

        @pytest.mark.kuberay_bug("4189")
        def test_no_fixture():
            raise InvariantViolationError("config changed")
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1", "-v")
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*::test_no_fixture[[]v1.5.0[]] XFAIL*", "*::test_no_fixture[[]v1.5.1[]] FAILED*"])


def test_custom_affected_range(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_kuberay import InvariantViolationError

        @pytest.mark.kuberay_bug("4189", affected=">=1.5.0,<1.6.0")
        def test_wider(kuberay_version):
            raise InvariantViolationError("config changed")
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.1,v1.6.0", "-v")
    result.stdout.fnmatch_lines(["*::test_wider[[]v1.5.1[]] XFAIL*", "*::test_wider[[]v1.6.0[]] FAILED*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('kuberay_bug("9999")', "ERROR: kuberay_bug: unknown bug id '9999'; registered ids: "
         + ", ".join(sorted(KNOWN_BUGS))),
        ('kuberay_bug("4189", affected="1.5.0")', "ERROR: kuberay_bug: affected='1.5.0' is not a version range"),
        ("kuberay_bug()", "ERROR: test_marked.py::test_it[[]v1.5.1[]]: kuberay_bug needs the bug id*"),
    ],
    ids=["unknown-id", "bad-range", "no-id"],
)
def test_bad_bug_markers_are_usage_errors(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(test_marked=f"""
        import pytest

        @pytest.mark.{marker}
        def test_it(kuberay_version):
            pass
    """)
    result = pytester.runpytest()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([message + "*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_known_bugs_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bug=BUG_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1")
    result.stdout.fnmatch_lines([
        "*= KubeRay conformance =*",
        "test * v1.5.0 * v1.5.1*",
        "test_bug.py::test_fails * xfail #4189 * FAILED*",
        "test_bug.py::test_passes * XPASS(strict) * passed*",
        "bug 4189 on v1.5.0: reproduced, as registered -- test_bug.py::test_fails",
        "bug 4189 on v1.5.0: NOT reproduced (strict xfail: this fails the run) -- test_bug.py::test_passes",
        "bug 4189 on v1.5.1: FOUND on a version the registry calls unaffected -- test_bug.py::test_fails",
        "bug 4189 on v1.5.1: not present, as registered -- test_bug.py::test_passes",
    ])


def test_summary_table_without_marked_tests_has_no_bug_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_version(kuberay_version): pass")
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.6.0")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= KubeRay conformance =*", "test_*.py::test_version * passed * passed*"])
    result.stdout.no_fnmatch_line("bug *")


def test_no_summary_without_version_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*KubeRay conformance*")


def test_min_version_skips_older_versions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.kuberay_min_version("v1.6.0", reason="rollback appeared in v1.6.0")
        def test_rollback(kuberay_version):
            assert kuberay_version.supports_rollback

        @pytest.mark.kuberay_min_version("1.6.0")
        def test_no_reason(kuberay_version):
            pass
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1+pr4212,v1.6.0", "-rs")
    result.assert_outcomes(passed=2, skipped=4)
    result.stdout.fnmatch_lines([
        "SKIPPED [[]2[]] *: needs KubeRay >= v1.6.0: rollback appeared in v1.6.0",
        "SKIPPED [[]2[]] *: needs KubeRay >= v1.6.0",
    ])


def test_ini_is_honored_and_overridden(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nkuberay_version = v1.5.0\nkuberay_provider = local\n")
    pytester.makepyfile("def test_version(kuberay_version, kuberay_settings): assert kuberay_settings")
    from_ini = pytester.runpytest("-v")
    from_ini.assert_outcomes(passed=1)
    from_ini.stdout.fnmatch_lines(["kuberay: versions v1.5.0; provider local; *",
                                   "*::test_version[[]v1.5.0[]] PASSED*"])
    from_cli = pytester.runpytest("-v", "--kuberay-version=v1.6.0")
    from_cli.assert_outcomes(passed=1)
    from_cli.stdout.fnmatch_lines(["*::test_version[[]v1.6.0[]] PASSED*"])
    monkeypatch.setenv("PYTEST_KUBERAY_VERSION", "v1.5.2")
    from_env = pytester.runpytest("-v")
    from_env.stdout.fnmatch_lines(["*::test_version[[]v1.5.2[]] PASSED*"])


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nkuberay_timeout_scale = fast\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --kuberay-timeout-scale: expected a number*got 'fast'*Example*"])


def test_settings_and_artifacts_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures="""
        def test_fixtures(kuberay_settings, kuberay_artifacts, pytestconfig):
            assert kuberay_settings.provider == "kind"
            assert kuberay_settings.timeout(10) == 20
            assert kuberay_artifacts.is_dir()
            assert kuberay_artifacts.parent == kuberay_settings.artifacts_dir
            assert kuberay_artifacts.name == "test_fixtures.py_test_fixtures"
    """)
    artifacts = pytester.path / "out"
    result = pytester.runpytest("--kuberay-provider=kind", "--kuberay-timeout-scale=2",
                                f"--kuberay-artifacts={artifacts}")
    result.assert_outcomes(passed=1)
    assert (artifacts / "test_fixtures.py_test_fixtures").is_dir()


def test_a_skipped_bug_test_is_neither_reproduced_nor_failed(pytester: pytest.Pytester) -> None:
    """pytest.skip() inside a kuberay_bug test is a skip, not evidence about the bug."""
    pytester.makepyfile(test_skip="""
        import pytest

        @pytest.mark.kuberay_bug("4189")
        def test_needs_cluster(kuberay_version):
            pytest.skip("no cluster")
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.0,v1.5.1")
    result.assert_outcomes(skipped=2)
    result.stdout.no_fnmatch_line("bug 4189 on *")  # a skipped test gives no verdict on the bug, either way


@pytest.mark.parametrize("args", ["", '"latest"'], ids=["no-version", "bad-version"])
def test_bad_min_version_marker_is_a_usage_error(pytester: pytest.Pytester, args: str) -> None:
    pytester.makepyfile(test_min=f"""
        import pytest

        @pytest.mark.kuberay_min_version({args})
        def test_it(kuberay_version):
            pass
    """)
    result = pytester.runpytest()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *kuberay_min_version*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_other_failures_on_an_affected_version_are_not_hidden_as_xfail(pytester: pytest.Pytester) -> None:
    """Only an invariant violation counts as the bug; a timeout or crash on v1.5.0 is a plain failure."""
    pytester.makepyfile("""
        import pytest

        @pytest.mark.kuberay_bug("4189")
        def test_infrastructure_broke(kuberay_version):
            raise AssertionError("timed out waiting for the RayService to be Ready")
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.0", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*bug 4189 on v1.5.0: NOT reproduced*"])


def test_summary_shows_the_first_violation_as_evidence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_kuberay import InvariantViolationError, Violation

        @pytest.mark.kuberay_bug("4189")
        def test_it(kuberay_version):
            first = Violation("active_config_frozen", "step #6 (60, 40, 40) at t=40.5s", "echo-abcde",
                              "active app 'echo' no longer runs the config it had", t=40.5, role="active",
                              became="new")
            raise InvariantViolationError("1 invariant violation(s)", [first])
    """)
    result = pytester.runpytest("--kuberay-version=v1.5.0")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines([
        "bug 4189 on v1.5.0: reproduced, as registered: active_config_frozen on cluster 'echo-abcde' at "
        "step #6 (60, 40, 40) at t=40.5s -- *::test_it",
        "    [[]active_config_frozen[]] step #6 (60, 40, 40) at t=40.5s on cluster 'echo-abcde': *",
    ])


SIGNATURE_TESTS = """
import pytest
from pytest_kuberay import InvariantViolationError, Violation


class Recording:
    def __init__(self, markers):
        self.markers = markers


def violation(invariant, role, became, t=50.0):
    return Violation(invariant, "step #6 (60, 40, 40) at t=50.0s", "echo-abcde", "config changed", t=t, role=role,
                     became=became)


@pytest.mark.kuberay_bug("4189")
def test_the_pending_cluster_got_the_old_config(kuberay_version):
    raise InvariantViolationError("1", [violation("pending_runs_new_config", "pending", "old")], Recording({}))


@pytest.mark.kuberay_bug("4189")
def test_the_active_got_the_new_config_after_a_restart(kuberay_version):
    raise InvariantViolationError("1", [violation("active_config_frozen", "active", "new")],
                                  Recording({"operator-restart": 30.0}))


@pytest.mark.kuberay_bug("4717")
def test_4717_after_a_restart(kuberay_version):
    raise InvariantViolationError("1", [violation("active_config_frozen", "active", "new")],
                                  Recording({"operator-restart": 30.0}))
"""


def test_a_violation_that_is_not_the_marked_bug_is_an_unknown_regression(pytester: pytest.Pytester) -> None:
    """The misattribution once seen: a fault where the pending cluster got the active's config was called 4189."""
    pytester.makepyfile(SIGNATURE_TESTS)
    result = pytester.runpytest("--kuberay-version=v1.5.0", "-rfxX")
    result.assert_outcomes(failed=2, xfailed=1)
    out = result.stdout.str()
    # Each of the two wrongly attributed tests fails as an unknown regression, and says why.
    failures = pytester.inline_run("--kuberay-version=v1.5.0").getfailures()
    assert sorted(f.head_line for f in failures) == [
        "test_the_active_got_the_new_config_after_a_restart[v1.5.0]",
        "test_the_pending_cluster_got_the_old_config[v1.5.0]",
    ]
    for failure in failures:
        assert "UNKNOWN REGRESSION on v1.5.0: the test is marked with bug #4189" in failure.longreprtext
    assert "bug 4717 on v1.5.0: reproduced, as registered" in out
    assert "bug 4189 on v1.5.0: NOT reproduced: other invariants broke (an unknown regression, not this bug)" in out




TWO_BUGS = """
import pytest
from pytest_kuberay import InvariantViolationError, Violation


class Reverted:
    markers = {"revert-spec": 1.0}


def violation(invariant, role):
    return Violation(invariant, "step #3 (100, 40, 20) at t=9.0s", "echo-abcde", "changed", t=9.0, role=role,
                     became="old")


@pytest.mark.kuberay_bug("abandoned-pending")
@pytest.mark.kuberay_bug("rollback-pending-config")
def test_rollback(kuberay_version):
    if kuberay_version.release.minor == 5:
        raise InvariantViolationError("1", [violation("no_extra_clusters", "other")], Reverted())
    if kuberay_version.release.minor == 6:
        raise InvariantViolationError("1", [violation("pending_config_frozen_during_rollback", "pending")],
                                      Reverted())
"""


def test_a_test_may_name_several_bugs_of_different_versions(pytester: pytest.Pytester) -> None:
    """Before v1.6.0 there is no rollback (one bug), v1.6.x rolls back wrongly (another), v1.7.0 is fixed."""
    pytester.makepyfile(TWO_BUGS)
    result = pytester.runpytest("--kuberay-version=v1.5.1,v1.6.2,v1.7.0", "-rxX")
    result.assert_outcomes(passed=1, xfailed=2)
    out = result.stdout.str()
    assert "bug abandoned-pending on v1.5.1: reproduced, as registered" in out
    assert "bug rollback-pending-config on v1.6.2: reproduced, as registered" in out
