"""Wall time and peak memory of each conformance scenario on the local provider.

Prints figures; asserts nothing. Run as root: ``make bench-e2e`` or
``.venv/bin/python benchmarks/e2e_bench.py [--versions v1.5.0,v1.5.1] [--suite suites/incremental_upgrade]``.

Each scenario is one pytest run in a subprocess. Memory is the machine's used
memory (``psutil.virtual_memory().used``) sampled twice a second, minus what
was used before the run: it covers every process the scenario starts (control
plane, operator, Traefik, node agent and the Ray pods).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def run_scenario(suite: str, version: str, extra: list[str], log_dir: Path) -> tuple[float, float, int]:
    """(wall seconds, peak GiB above baseline, pytest exit code); pytest's output goes to ``log_dir``."""
    baseline = psutil.virtual_memory().used
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.5):
            peak = max(peak, psutil.virtual_memory().used)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", suite, f"--kuberay-version={version}", "--kuberay-provider=local",
           "-q", "-p", "no:cacheprovider", *extra]
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{Path(suite).name}-{version}.log").open("wb") as out:
        code = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    return wall, (peak - baseline) / 2**30, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", default="v1.5.0,v1.5.1")
    parser.add_argument("--suite", action="append", help="suite path (repeatable); default: every suite")
    parser.add_argument("--logs", type=Path, default=ROOT / "kuberay-artifacts" / "bench-e2e",
                        help="where each scenario's pytest output goes")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments after --")
    args = parser.parse_args()
    suites = args.suite or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites").iterdir() if p.is_dir()
                                  and not p.name.startswith(("_", ".")))
    print(f"{'scenario':<45} {'version':<14} {'wall':>8} {'peak mem':>10} {'exit':>5}")
    for suite in suites:
        for version in args.versions.split(","):
            wall, peak, code = run_scenario(suite, version, args.pytest_args, args.logs)
            print(f"{suite:<45} {version:<14} {wall:7.0f}s {peak:8.2f}GiB {code:>5}", flush=True)


if __name__ == "__main__":
    main()
