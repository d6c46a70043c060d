"""pytest hooks only: options, markers, version parametrization, known-bug xfails, summary.

Fixtures live in :mod:`pytest_kuberay.fixtures`; everything else is plain
library code that the hooks call.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from pytest_kuberay.errors import KubeRayTestError
from pytest_kuberay.known_bugs import BUG_KEY, KNOWN_BUGS, BugVerdict, KnownBug, known_bug, lookup, parse_affected
from pytest_kuberay.observe.timeline import InvariantViolationError
from pytest_kuberay.phase_reports import REPORT_KEY
from pytest_kuberay.report.summary import SessionSummary
from pytest_kuberay.settings import OPTIONS, SETTINGS_KEY, Settings, resolve_settings, settings_of
from pytest_kuberay.versions import KubeRayVersion

pytest_plugins = ["pytest_kuberay.fixtures"]

log = logging.getLogger(__name__)

SUMMARY_KEY = pytest.StashKey[SessionSummary]()
REGISTRY_KEY = pytest.StashKey[dict[str, KnownBug]]()
VERSION_ARG = "kuberay_version"

_MARKERS = (
    "kuberay_bug(id, affected=None, title=None, link=None): the test reproduces KubeRay bug <id>; on affected "
    "versions it is a strict xfail. The id is a registered bug (built in, or from a conftest's "
    "pytest_kuberay_known_bugs hook), or a bug of the test's own given with affected= and title=",
    "kuberay_min_version(version, reason): skip on KubeRay versions older than <version>",
)



def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kuberay", "KubeRay conformance (pytest-kuberay)")
    for option in OPTIONS:
        help_text = f"{option.help} [ini: {option.ini}, env: {option.env}]"
        if option.is_flag:
            group.addoption(option.flag, action="store_true", default=None, help=help_text)
        else:
            group.addoption(option.flag, action="store", default=None, metavar=option.metavar, help=help_text)
        parser.addini(option.ini, help=option.help, default=None)


def _terminate_like_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    for marker in _MARKERS:
        config.addinivalue_line("markers", marker)
    # A CI timeout or `kill` sends SIGTERM, which would end the process without teardown and leave the
    # local cluster's processes, mounts and network namespace behind: tear down as for Ctrl-C instead.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    try:
        config.stash[SETTINGS_KEY] = resolve_settings(config)
    except KubeRayTestError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a KubeRay version once per ``--kuberay-version``."""
    marked = metafunc.definition.get_closest_marker("kuberay_bug") is not None
    if VERSION_ARG not in metafunc.fixturenames and not marked:
        return
    if VERSION_ARG not in metafunc.fixturenames:
        metafunc.fixturenames.append(VERSION_ARG)
    versions = settings_of(metafunc.config).versions
    metafunc.parametrize(VERSION_ARG, versions, ids=[v.label for v in versions], scope="session")


def _version_of(item: pytest.Item) -> KubeRayVersion | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(VERSION_ARG) if callspec else None


def _marked_bug(item: pytest.Item, marker: pytest.Mark, registry: dict[str, KnownBug]
                ) -> tuple[KnownBug, SpecifierSet | None]:
    if not marker.args:
        raise KubeRayTestError(f"{item.nodeid}: kuberay_bug needs the bug id, e.g. @pytest.mark.kuberay_bug('4189')")
    bug_id = str(marker.args[0])
    affected_text = marker.kwargs.get("affected")
    if bug_id not in registry and affected_text and marker.kwargs.get("title"):
        # a bug of the test's own, declared on the marker
        bug = known_bug(bug_id, str(marker.kwargs["title"]), str(affected_text), link=marker.kwargs.get("link"))
    else:
        bug = lookup(bug_id, registry)
    return bug, parse_affected(affected_text) if affected_text else None


def _apply_bug_marker(item: pytest.Item, settings: Settings, registry: dict[str, KnownBug]) -> None:
    """The bug a version shows: a test may carry several marks, for bugs of different version ranges.

    The first mark whose bug affects the version decides (strict xfail); with none, the first
    mark's bug is reported as not present.
    """
    version = _version_of(item)
    marked = [_marked_bug(item, m, registry) for m in item.iter_markers("kuberay_bug")]
    if not marked or version is None:
        return
    affecting = [(bug, affected) for bug, affected in marked if bug.affects(version, affected)]
    bug, _ = affecting[0] if affecting else marked[0]
    expected = bool(affecting) and not settings.ignore_known_bugs
    item.stash[BUG_KEY] = BugVerdict(bug, version, expected, tuple(b.id for b, _ in marked))
    if expected:
        item.add_marker(pytest.mark.xfail(reason=bug.xfail_reason(version), strict=True,
                                          raises=InvariantViolationError))


def _apply_min_version(item: pytest.Item) -> None:
    marker = item.get_closest_marker("kuberay_min_version")
    version = _version_of(item)
    if marker is None or version is None:
        return
    from packaging.version import InvalidVersion, Version

    try:
        minimum = Version(str(marker.args[0]).lstrip("v"))
    except (IndexError, InvalidVersion):
        raise KubeRayTestError(
            f"{item.nodeid}: kuberay_min_version needs a version, e.g. "
            "@pytest.mark.kuberay_min_version('v1.6.0', reason='rollback')"
        ) from None
    if version.release < minimum:
        reason = marker.kwargs.get("reason") or (marker.args[1] if len(marker.args) > 1 else "")
        item.add_marker(pytest.mark.skip(reason=f"needs KubeRay >= v{minimum}: {reason}".rstrip(": ")))


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_kuberay import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def known_bug_registry(config: pytest.Config) -> dict[str, KnownBug]:
    """The built-in bugs plus every conftest's (``pytest_kuberay_known_bugs``); a conftest may not redefine one."""
    if REGISTRY_KEY not in config.stash:
        registry = dict(KNOWN_BUGS)
        for bugs in config.hook.pytest_kuberay_known_bugs(config=config):
            for bug in bugs or ():
                if not isinstance(bug, KnownBug):
                    raise pytest.UsageError(f"pytest_kuberay_known_bugs must return KnownBug objects "
                                            f"(pytest_kuberay.known_bug(...)), got {bug!r}")
                if bug.id in registry and registry[bug.id] != bug:
                    raise pytest.UsageError(f"pytest_kuberay_known_bugs: bug id {bug.id!r} is already registered "
                                            f"({registry[bug.id].title}); pick another id")
                registry[bug.id] = bug
        config.stash[REGISTRY_KEY] = registry
    return config.stash[REGISTRY_KEY]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = settings_of(config)
    try:
        registry = known_bug_registry(config)
        for item in items:
            _apply_bug_marker(item, settings, registry)
            _apply_min_version(item)
    except KubeRayTestError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = settings_of(config)
    versions = ", ".join(v.label for v in settings.versions)
    return [f"kuberay: versions {versions}; provider {settings.provider}; artifacts {settings.artifacts_dir}"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (fixtures collect artifacts on failure) and in the summary."""
    report = yield
    if report.when == "call" and _version_of(item) is not None:
        from pytest_kuberay._support.phases import PHASES

        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome  # pytest says skipped
        PHASES.mark(f"verdict {item.nodeid}: {outcome}")
    verdict = item.stash.get(BUG_KEY, None)
    if report.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(InvariantViolationError):
        _plot_unsaved_timeline(item, call.excinfo.value)  # type: ignore[arg-type]
    if verdict is not None and report.when == "call" and hasattr(report, "wasxfail"):
        _fail_unless_the_bug(report, call, verdict)
    item.stash.setdefault(REPORT_KEY, {})[report.when] = report
    _summary(item.config).record(item, call, report, verdict)
    return report


def _plot_unsaved_timeline(item: pytest.Item, error: InvariantViolationError) -> None:
    """A recording that failed a test but was never saved (``record_for``) is plotted now, as evidence."""
    if error.timeline is None or any(k == "kuberay_plot" for k, _ in item.user_properties):
        return
    from pytest_kuberay.report.artifacts import save_timeline, test_artifacts_dir

    version = _version_of(item)
    title = f"KubeRay {version.label if version else '?'}: {item.name}"
    try:
        json_path, png_path = save_timeline(error.timeline, test_artifacts_dir(
            settings_of(item.config).artifacts_dir, item.nodeid), title)
    except Exception as exc:  # evidence must never hide the failure itself
        log.warning("could not save the failing recording of %s: %s", item.nodeid, exc)
        return
    item.user_properties += [("kuberay_timeline", str(json_path)), ("kuberay_plot", str(png_path))]


def _fail_unless_the_bug(report: pytest.TestReport, call: pytest.CallInfo[None], verdict: BugVerdict) -> None:
    """An expected failure counts only if its violations are the marked bug's: anything else is a regression."""
    error = call.excinfo.value if call.excinfo is not None else None
    if not isinstance(error, InvariantViolationError) or not error.violations:
        return
    markers = error.timeline.markers if error.timeline is not None else {}
    if any(verdict.bug.matches(v, markers) for v in error.violations):
        return
    del report.wasxfail
    report.outcome = "failed"
    report.longrepr = (f"UNKNOWN REGRESSION on {verdict.version.label}: the test is marked with bug "
                       f"#{verdict.bug.id} ({verdict.bug.title}), but none of its violations matches that bug's "
                       f"signature, so it is not that bug:\n\n{error}")


def _summary(config: pytest.Config) -> SessionSummary:
    if SUMMARY_KEY not in config.stash:
        config.stash[SUMMARY_KEY] = SessionSummary(VERSION_ARG)
    return config.stash[SUMMARY_KEY]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Where the session's time went (phases.json in the artifacts), after every fixture was torn down."""
    from pytest_kuberay._support.phases import PHASES

    summary = _summary(session.config)
    if not PHASES.phases and not summary.results:
        return
    artifacts = settings_of(session.config).artifacts_dir
    if PHASES.phases:
        PHASES.write(artifacts / "phases.json")
    summary.write_json(artifacts / "conformance.json")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    _summary(config).write(terminalreporter.section, terminalreporter.write_line)
