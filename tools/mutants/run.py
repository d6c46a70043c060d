#!/usr/bin/env python3
"""Run the suite against operator mutants: KubeRay's source with one deliberate fault each.

For every mutant of ``mutants.toml`` (next to this file): copy the base checkout (default
/tmp/kuberay-v1.7.0) to a temporary directory, apply the mutant's one search/replace, build the
operator from it (cached by a hash of the tree) and run the mutant's suite test against it with
``--kuberay-source``. The mutant is CAUGHT when that test failed (not xfailed) with a violation of
the mutant's invariant, MISSED otherwise. The temporary copy is removed afterwards, also on a
failure or Ctrl-C.

    tools/mutants/run.py --list
    tools/mutants/run.py --only capacity-active-steps-down-twice
    tools/mutants/run.py --build-only          # apply + build every mutant, run nothing

Mutants run one at a time: each starts its own local cluster (root, ``--kuberay-provider=local``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPEC = HERE / "mutants.toml"
DEFAULT_BASE = Path("/tmp/kuberay-v1.7.0")
DEFAULT_ARTIFACTS = REPO / "kuberay-artifacts" / "mutants"
VERSION = "v1.7.0"


@dataclass(frozen=True)
class Mutant:
    name: str
    invariant: str
    file: str
    old: str
    new: str
    test: str
    k: str
    why: str


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # CAUGHT | MISSED | BUILD-FAILED | APPLY-FAILED | INTERRUPTED
    seconds: float
    outcome: str = ""  # the test's outcome (conformance.json / junit)
    evidence: str = ""


def load(spec: Path = SPEC) -> list[Mutant]:
    data = tomllib.loads(spec.read_text())
    mutants = [Mutant(**{k: str(v).strip("\n") if k in ("old", "new") else str(v).strip() for k, v in m.items()})
               for m in data.get("mutant", [])]
    names = [m.name for m in mutants]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SystemExit(f"{spec}: duplicate mutant names {sorted(dupes)}")
    return mutants


def apply(mutant: Mutant, operator_dir: Path) -> None:
    """Replace the mutant's snippet; it must occur exactly once."""
    path = operator_dir / mutant.file
    if not path.is_file():
        raise ValueError(f"{mutant.name}: {mutant.file} is not a file under {operator_dir}")
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise ValueError(f"{mutant.name}: the snippet occurs {count} times in {mutant.file} (must be exactly once):\n"
                         f"{mutant.old}")
    path.write_text(text.replace(mutant.old, mutant.new, 1))


def build(source: Path, log) -> None:
    """Build (or find in the plugin's cache) the operator of ``source``: a compile error shows here, not mid-run."""
    sys.path.insert(0, str(REPO))
    from pytest_kuberay._support.toolchain import ensure_operator

    started = time.monotonic()
    binary = ensure_operator(VERSION, source=source)
    log(f"  operator: {binary} ({time.monotonic() - started:.0f}s)")


def _junit_failure(junit: Path) -> tuple[str, str]:
    """(outcome, failure text) of the one selected testcase in a junit XML file."""
    if not junit.is_file():
        return "no junit", ""
    for case in ET.parse(junit).getroot().iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                text = (node.get("message") or "") + "\n" + (node.text or "")
                return ("failed" if tag == "failure" else "error"), text
        skipped = case.find("skipped")
        if skipped is not None:
            kind = "xfailed" if (skipped.get("type") or "").endswith("xfail") else "skipped"
            return kind, skipped.get("message") or ""
        return "passed", ""
    return "no testcase", ""


def judge(mutant: Mutant, artifacts: Path) -> tuple[str, str, str]:
    """(verdict, outcome, evidence) from the run's junit XML and conformance.json.

    CAUGHT: the test failed (not xfailed, not an XPASS(strict), not a setup error) and a violation
    of the mutant's invariant (``[invariant] ...``) is in its failure.
    """
    outcome, text = _junit_failure(artifacts / "junit.xml")
    conformance = artifacts / "conformance.json"
    results = json.loads(conformance.read_text()) if conformance.is_file() else []
    first = results[0] if results else {}
    if first.get("outcome"):  # passed | FAILED | xfail | XPASS | XPASS(strict) | skipped | error
        outcome = str(first["outcome"]).lower()
    tag = f"[{mutant.invariant}]"
    lines = [ln.strip() for ln in text.splitlines() if tag in ln]
    summary_evidence = first.get("evidence") or ""
    if summary_evidence.startswith(tag):
        lines.insert(0, summary_evidence)
    evidence = lines[0] if lines else (summary_evidence or next(
        (ln.strip() for ln in text.splitlines() if ln.strip()), ""))
    caught = outcome == "failed" and bool(lines)
    return ("CAUGHT" if caught else "MISSED"), outcome, evidence


def _run_seconds(artifacts: Path) -> float:
    """The pytest run's wall time, from its junit XML (for --rejudge)."""
    try:
        return float(ET.parse(artifacts / "junit.xml").getroot().find("testsuite").get("time", 0))  # type: ignore[union-attr]
    except (OSError, ET.ParseError, AttributeError, TypeError, ValueError):
        return 0.0


def pytest_argv(mutant: Mutant, source: Path, artifacts: Path) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "pytest"), mutant.test, "-k", mutant.k, f"--kuberay-version={VERSION}",
            f"--kuberay-source={source}", "--kuberay-provider=local", f"--kuberay-artifacts={artifacts}",
            "-p", "no:cacheprovider", "-rxX", f"--junitxml={artifacts / 'junit.xml'}"]


def run_one(mutant: Mutant, base: Path, artifacts_root: Path, build_only: bool, log) -> Outcome:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"kuberay-mutant-{mutant.name}-"))
    artifacts = artifacts_root / mutant.name
    try:
        source = tmp / "kuberay"
        shutil.copytree(base, source, symlinks=True)
        try:
            apply(mutant, source / "ray-operator")
        except ValueError as exc:
            return Outcome(mutant, "APPLY-FAILED", time.monotonic() - started, evidence=str(exc).splitlines()[0])
        try:
            build(source, log)
        except Exception as exc:  # a compile error: the mutant is broken, not caught
            return Outcome(mutant, "BUILD-FAILED", time.monotonic() - started, evidence=str(exc).splitlines()[0][:300])
        if build_only:
            return Outcome(mutant, "BUILT", time.monotonic() - started)
        if artifacts.exists():
            shutil.rmtree(artifacts)
        artifacts.mkdir(parents=True)
        argv = pytest_argv(mutant, source, artifacts)
        env = {**os.environ, "PYTEST_KUBERAY_TIMEOUT_SCALE": "2"}
        log("  $ PYTEST_KUBERAY_TIMEOUT_SCALE=2 " + shlex.join(argv))
        with open(artifacts / "pytest.log", "w") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                proc.wait()
            except KeyboardInterrupt:
                # pytest got the SIGINT too (same process group): let it tear its cluster down first.
                log("  interrupted: waiting for pytest to tear its cluster down (Ctrl-C again to kill it)")
                try:
                    proc.wait()
                except KeyboardInterrupt:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                raise
        verdict, outcome, evidence = judge(mutant, artifacts)
        return Outcome(mutant, verdict, time.monotonic() - started, outcome, evidence)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(outcomes: list[Outcome]) -> str:
    rows = [("mutant", "invariant", "verdict", "test outcome", "seconds", "evidence")]
    rows += [(o.mutant.name, o.mutant.invariant, o.verdict, o.outcome, f"{o.seconds:.0f}", o.evidence[:160])
             for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this mutant (repeatable, or comma-separated)")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE,
                        help=f"the KubeRay checkout to mutate (default {DEFAULT_BASE})")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help=f"where each mutant's run writes its artifacts (default {DEFAULT_ARTIFACTS})")
    parser.add_argument("--spec", type=Path, default=SPEC, help="the mutant spec (default: mutants.toml beside me)")
    parser.add_argument("--build-only", action="store_true", help="apply and build each mutant, run no test")
    parser.add_argument("--rejudge", action="store_true",
                        help="run nothing: judge the artifacts of earlier runs again and print the table")
    parser.add_argument("--json", type=Path, help="also write the outcomes here as JSON")
    args = parser.parse_args(argv)

    mutants = load(args.spec)
    if args.list:
        for m in mutants:
            print(f"{m.name:<32} {m.invariant:<40} {m.test} -k {m.k!r}")
        return 0
    wanted = {n.strip() for arg in args.only for n in arg.split(",") if n.strip()}
    unknown = wanted - {m.name for m in mutants}
    if unknown:
        parser.error(f"unknown mutant(s) {sorted(unknown)}; --list shows them")
    selected = [m for m in mutants if not wanted or m.name in wanted]
    if not (args.base / "ray-operator").is_dir():
        parser.error(f"--base {args.base}: no ray-operator/ in it (a KubeRay checkout is needed)")

    def log(text: str) -> None:
        print(text, flush=True)

    outcomes: list[Outcome] = []
    if args.rejudge:
        for mutant in selected:
            artifacts = args.artifacts / mutant.name
            if not (artifacts / "junit.xml").is_file() and not (artifacts / "conformance.json").is_file():
                continue
            verdict, outcome, evidence = judge(mutant, artifacts)
            outcomes.append(Outcome(mutant, verdict, _run_seconds(artifacts), outcome, evidence))
        print(table(outcomes))
        return 0 if outcomes and all(o.verdict == "CAUGHT" for o in outcomes) else 1
    try:
        for mutant in selected:
            log(f"{mutant.name}: {mutant.invariant} via {mutant.test} -k {mutant.k!r}")
            outcome = run_one(mutant, args.base, args.artifacts, args.build_only, log)
            outcomes.append(outcome)
            log(f"{outcome.verdict:<12} {mutant.name} ({mutant.invariant}) {outcome.seconds:.0f}s: {outcome.evidence}")
    except KeyboardInterrupt:
        log("interrupted")
    print()
    print(table(outcomes))
    if args.json:
        args.json.write_text(json.dumps([{"name": o.mutant.name, "invariant": o.mutant.invariant, "verdict": o.verdict,
                                          "outcome": o.outcome, "seconds": round(o.seconds), "evidence": o.evidence}
                                         for o in outcomes], indent=1) + "\n")
    good = {"CAUGHT", "BUILT"}
    return 0 if outcomes and len(outcomes) == len(selected) and all(o.verdict in good for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
