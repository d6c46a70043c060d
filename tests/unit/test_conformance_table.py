"""The version x bug table from recorded result rows: verdict words, masking, evidence links, plots copied."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_kuberay.report.conformance import bug_cells, load_results, main


def row(version: str, bug: str, state: str, outcome: str, marked=None, evidence: str = "", plot: str | None = None):
    return {"test": "suites/rollback/test_rollback.py::test_rollback", "version": version, "outcome": outcome,
            "bug": bug, "marked": marked or [bug], "bug_state": state, "evidence": evidence,
            "artifacts": [plot] if plot else []}


def test_cells_read_the_deciding_bug_and_mask_the_others() -> None:
    both = ["abandoned-pending", "rollback-pending-config"]
    rows = [row("v1.5.1", "abandoned-pending", "reproduced, as registered", "xfail", both, "[no_extra_clusters] x"),
            row("v1.6.2", "rollback-pending-config", "reproduced, as registered", "xfail", both, "[pending...] y")]
    cells = bug_cells(rows)
    assert cells[("abandoned-pending", "v1.5.1")].verdict == "XFAIL"
    assert cells[("rollback-pending-config", "v1.5.1")].verdict == "masked"
    assert cells[("rollback-pending-config", "v1.6.2")].evidence == "[pending...] y"


def test_a_bug_found_where_it_should_not_be_is_a_finding() -> None:
    rows = [row("v1.6.2", "httproute-churn", "FOUND on a version the registry calls unaffected", "FAILED")]
    assert bug_cells(rows)[("httproute-churn", "v1.6.2")].verdict.startswith("FAILED: FOUND")


def test_the_page_links_evidence_and_copies_plots(tmp_path: Path) -> None:
    plot = tmp_path / "timeline.png"
    plot.write_bytes(b"png")
    run = tmp_path / "run-v1.5.0"
    run.mkdir()
    (run / "conformance.json").write_text(json.dumps([
        row("v1.5.0", "4189", "reproduced, as registered", "xfail", evidence="[active_config_frozen] step 3",
            plot=str(plot)),
        row("v1.5.1", "4189", "not present, as registered", "passed")]))
    out = tmp_path / "docs" / "conformance.md"
    assert main([str(run), "--out", str(out)]) == 0
    page = out.read_text()
    assert "| **4189**" in page and "XFAIL [(evidence)](#4189-v150)" in page and "| PASS |" in page
    assert "[plot](conformance/v1.5.0/4189.png)" in page
    assert (tmp_path / "docs" / "conformance" / "v1.5.0" / "4189.png").read_bytes() == b"png"


def test_a_run_without_results_is_named(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path), "--out", str(tmp_path / "c.md")]) == 2
    assert "no conformance.json" in capsys.readouterr().err
    assert load_results([]) == []


def test_a_later_run_of_the_same_test_and_version_replaces_the_earlier(tmp_path: Path) -> None:
    first, rerun, other = tmp_path / "first", tmp_path / "rerun", tmp_path / "other"
    for directory in (first, rerun, other):
        directory.mkdir()
    (first / "conformance.json").write_text(json.dumps([
        row("v1.6.2", "fast-rollback", "NOT reproduced", "failed"), row("v1.5.1", "fast-rollback", "NOT reproduced",
                                                                        "failed")]))
    (rerun / "conformance.json").write_text(json.dumps([row("v1.6.2", "fast-rollback", "reproduced, as registered",
                                                            "xfail")]))
    (other / "conformance.json").write_text(json.dumps([row("v1.7.0", "fast-rollback", "not present, as registered",
                                                            "passed")]))
    cells = bug_cells(load_results([first, rerun, other]))
    assert cells[("fast-rollback", "v1.6.2")].verdict == "XFAIL"
    assert cells[("fast-rollback", "v1.5.1")].verdict.startswith("FAILED")  # not rerun: the first result stands
    assert cells[("fast-rollback", "v1.7.0")].verdict == "PASS"


def test_a_later_column_adds_to_the_kept_table_and_keeps_its_plots(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "conformance.md"
    plot = tmp_path / "timeline.png"
    plot.write_bytes(b"png-150")
    first, later = tmp_path / "run-v1.5.0", tmp_path / "run-v1.6.2"
    for directory in (first, later):
        directory.mkdir()
    (first / "conformance.json").write_text(json.dumps([
        row("v1.5.0", "4189", "reproduced, as registered", "xfail", evidence="[active_config_frozen] x",
            plot=str(plot))]))
    (later / "conformance.json").write_text(json.dumps([row("v1.6.2", "4189", "not present, as registered",
                                                            "passed")]))
    assert main([str(first), "--out", str(out)]) == 0
    plot.unlink()  # the first run's artifacts are gone: only the kept copy remains
    assert main([str(later), "--out", str(out)]) == 0
    page = out.read_text()
    assert "| 4189" not in page and "XFAIL [(evidence)](#4189-v150)" in page and "| PASS |" in page
    assert "[plot](conformance/v1.5.0/4189.png)" in page
    assert (tmp_path / "docs" / "conformance" / "v1.5.0" / "4189.png").read_bytes() == b"png-150"
    kept = json.loads((tmp_path / "docs" / "conformance" / "results.json").read_text())
    assert {(r["version"], tuple(r["artifacts"])) for r in kept} == {("v1.5.0", ("v1.5.0/4189.png",)), ("v1.6.2", ())}
    assert main([str(later), "--out", str(out), "--fresh"]) == 0
    assert "v1.5.0" not in out.read_text().split("## Evidence")[0]
