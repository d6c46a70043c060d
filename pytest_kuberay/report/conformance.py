"""The conformance table: every known bug against every KubeRay version run, from the runs' ``conformance.json``.

``make conformance`` runs the suites once per version (a column each, and one more per
``--kuberay-source`` build) and then calls :func:`main` to merge what each run wrote into
``docs/conformance.md``: a version x bug table whose cells give the verdict and the first
line of evidence, with the plot of the recording that shows it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_kuberay.known_bugs import KNOWN_BUGS

__all__ = ["RESULTS_FILE", "Cell", "bug_cells", "load_results", "main", "render"]

#: The merged rows behind the page, kept with its plots: ``docs/conformance/results.json``.
RESULTS_FILE = "results.json"

#: How a cell reads, from the summary's bug state of the test that decided it.
VERDICT_WORDS = {
    "reproduced, as registered": "XFAIL",
    "not present, as registered": "PASS",
}


@dataclass(frozen=True)
class Cell:
    verdict: str  # XFAIL, PASS, masked, or FAILED: <state>
    evidence: str = ""
    plot: str | None = None
    tests: int = 1


def load_results(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every result row of the given ``conformance.json`` files (or directories holding one).

    A test run again on the same version in a later run (a later path) replaces the earlier result.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        file = path / "conformance.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no conformance.json here (did the run reach its end?)")
        for row in json.loads(file.read_text()):
            row["artifacts"] = [_resolved(a, file.parent) for a in row.get("artifacts", [])]
            rows.pop((row["test"], row["version"]), None)
            rows[(row["test"], row["version"])] = row
    return list(rows.values())


def _resolved(artifact: str, base: Path) -> str:
    """A kept table's plots are named relative to its results file; a run's as pytest got them."""
    path = Path(artifact)
    return str(base / path) if not path.is_absolute() and (base / path).is_file() else artifact


def _cell_of(row: dict[str, Any], bug: str) -> Cell:
    plot = next((a for a in row.get("artifacts", []) if a.endswith(".png")), None)
    if row.get("bug") != bug:  # decided by another bug marked on the same test
        if row.get("outcome") == "passed":
            return Cell("PASS", "", None)
        return Cell("masked", f"the test shows bug {row.get('bug')} on this version", plot)
    state = row.get("bug_state") or row.get("outcome", "?")
    verdict = VERDICT_WORDS.get(state, f"FAILED: {state}")
    if row.get("outcome") == "skipped":
        verdict = "skipped"
    return Cell(verdict, row.get("evidence", "") if verdict != "PASS" else "", plot if verdict != "PASS" else None)


def bug_cells(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """(bug id, version) -> the cell: the worst verdict of the tests marked with that bug on that version."""
    rank = {"PASS": 0, "skipped": 1, "masked": 2, "XFAIL": 3}
    cells: dict[tuple[str, str], Cell] = {}
    for row in rows:
        for bug in row.get("marked") or ([row["bug"]] if row.get("bug") else []):
            key = (bug, row["version"])
            cell = _cell_of(row, bug)
            old = cells.get(key)
            if old is None:
                cells[key] = cell
                continue
            worse = rank.get(cell.verdict, 9) > rank.get(old.verdict, 9)
            kept = cell if worse else old
            cells[key] = Cell(kept.verdict, kept.evidence, kept.plot, old.tests + 1)
    return cells


def _version_order(version: str) -> tuple[int, ...]:
    core = version.lstrip("v").split("+")[0].split("-")[0]
    return tuple(int(p) for p in core.split(".") if p.isdigit())


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: Sequence[dict[str, Any]], out_dir: Path, sources: dict[str, str] | None = None,
           runs: Sequence[str] = ()) -> str:
    """The Markdown page; plots are copied under ``out_dir/conformance/`` and linked relative to ``out_dir``.

    The rows behind it go to ``out_dir/conformance/results.json``, for the next run to add to.
    """
    plots = out_dir / "conformance"
    with tempfile.TemporaryDirectory(prefix="pytest-kuberay-plots-") as aside:
        return _render(_with_plots_kept_aside(rows, plots, Path(aside)), out_dir, plots, sources, runs)


def _render(rows: Sequence[dict[str, Any]], out_dir: Path, plots: Path, sources: dict[str, str] | None,
            runs: Sequence[str]) -> str:
    cells = bug_cells(rows)
    versions = sorted({r["version"] for r in rows}, key=_version_order)
    bugs = [b for b in KNOWN_BUGS if any((b, v) in cells for v in versions)]
    bugs += sorted({b for b, _ in cells} - set(bugs))
    lines = [
        "# Conformance: known bugs x KubeRay versions",
        "",
        f"Generated by `pytest-kuberay conformance` (the last step of `make conformance`) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d} from {len(rows)} test results"
        + (f" of the runs {', '.join(f'`{r}`' for r in runs)} (a later run's result replaces an earlier one's)"
           if runs else "")
        + ". A version column lists only what those runs ran; `-` is a bug no run judged there. XFAIL: the "
        "bug reproduced where the registry says it exists (a strict "
        "expected failure, its signature matched). PASS: the test passed where the registry says the bug is "
        "absent. masked: the test failed on another bug marked on it first. Anything else is a finding.",
        "",
    ]
    recovered = Counter(r["recovered"] for r in rows if r.get("recovered"))
    lines += [f"{count} of the results were {how}.\n" for how, count in recovered.items()]
    if sources:
        lines += ["Columns built from source: " + "; ".join(f"`{v}` = {s}" for v, s in sources.items()), ""]
    lines += ["| bug | " + " | ".join(versions) + " |", "|---|" + "---|" * len(versions)]
    evidence: list[str] = []
    copied: dict[str, Path] = {}
    for bug in bugs:
        known = KNOWN_BUGS.get(bug)
        title = f"**{bug}**" + (f" {known.title[:70]}{'...' if len(known.title) > 70 else ''}" if known else "")
        row = [_escape(title)]
        for version in versions:
            cell = cells.get((bug, version))
            if cell is None:
                row.append("-")
                continue
            text = cell.verdict
            if cell.evidence or cell.plot:
                anchor = f"{bug}-{version}".replace(".", "").replace("+", "")
                text += f" [(evidence)](#{anchor})"
                link = ""
                if cell.plot and Path(cell.plot).is_file():
                    target = plots / version / f"{bug}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(cell.plot, target)
                    copied[cell.plot] = target
                    link = f" [plot]({target.relative_to(out_dir).as_posix()})"
                evidence.append(f"- <a id=\"{anchor}\"></a>**{bug} on {version}** ({cell.verdict}): "
                                f"{_escape(cell.evidence) or '(no violation line)'}{link}")
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Evidence, first line per cell", "", *evidence, ""]
    lines += ["## Every test", "", "| test | " + " | ".join(versions) + " |", "|---|" + "---|" * len(versions)]
    by_test: dict[str, dict[str, str]] = {}
    for r in rows:
        by_test.setdefault(r["test"], {})[r["version"]] = r["outcome"]
    for test, outcomes in by_test.items():
        lines.append(f"| `{_escape(test)}` | " + " | ".join(outcomes.get(v, "-") for v in versions) + " |")
    _keep_results(rows, copied, plots)
    return "\n".join(lines) + "\n"


def _with_plots_kept_aside(rows: Sequence[dict[str, Any]], plots: Path, aside: Path) -> list[dict[str, Any]]:
    """Empty ``plots`` for the new page, first copying aside the plots that kept rows still point into it."""
    if not plots.exists():
        return list(rows)
    moved: dict[str, str] = {}
    for row in rows:
        for artifact in row.get("artifacts", []):
            path = Path(artifact)
            if path.is_file() and path.resolve().is_relative_to(plots.resolve()) and artifact not in moved:
                target = aside / str(len(moved)) / path.name
                target.parent.mkdir(parents=True)
                shutil.copy2(path, target)
                moved[artifact] = str(target)
    shutil.rmtree(plots)
    return [{**row, "artifacts": [moved.get(a, a) for a in row.get("artifacts", [])]} for row in rows]


def _keep_results(rows: Sequence[dict[str, Any]], copied: dict[str, Path], plots: Path) -> None:
    """Write the merged rows next to the plots (``results.json``), their plots named relative to it.

    A later ``make conformance`` of one version reads it back first, so a new column adds to
    the table instead of replacing the versions that did not run again.
    """
    plots.mkdir(parents=True, exist_ok=True)
    kept = []
    for row in rows:
        artifacts = [copied[a].relative_to(plots).as_posix() for a in row.get("artifacts", []) if a in copied]
        kept.append({**row, "artifacts": artifacts})
    (plots / RESULTS_FILE).write_text(json.dumps(kept, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-kuberay conformance",
                                     description="Merge runs' conformance.json into the version x bug table.")
    parser.add_argument("runs", nargs="*", type=Path,
                        help="artifact directories (or conformance.json files); a later run's result for the same "
                             "test and version replaces an earlier one")
    parser.add_argument("--out", type=Path, default=Path("docs/conformance.md"), help="the page to write")
    parser.add_argument("--fresh", action="store_true",
                        help=f"start a new table: without it the page's kept results (conformance/{RESULTS_FILE} "
                             "next to it) are read first, so the runs add or replace columns")
    parser.add_argument("--source", action="append", default=[], metavar="VERSION=DESCRIPTION",
                        help="say what a source-built column was built from")
    args = parser.parse_args(argv)
    kept = args.out.parent / "conformance" / RESULTS_FILE
    inputs = ([kept] if kept.is_file() and not args.fresh else []) + list(args.runs)
    inputs = list(dict.fromkeys(inputs))  # the kept file named again is read once
    try:
        rows = load_results(inputs)
    except (OSError, ValueError) as exc:
        print(f"pytest-kuberay conformance: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("pytest-kuberay conformance: no results: name the runs' artifact directories", file=sys.stderr)
        return 2
    given = dict(s.split("=", 1) for s in args.source if "=" in s)
    for row in rows:  # a source-built column keeps saying what it was built from
        row["built_from"] = given.get(row["version"], row.get("built_from"))
    sources = {r["version"]: r["built_from"] for r in rows if r.get("built_from")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, args.out.parent, sources, [str(r) for r in inputs]))
    print(f"wrote {args.out}: {len(rows)} results")
    return 0
