"""``make toolchain`` / ``pytest-kuberay toolchain``: prebuild the binaries and print where they are."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from pytest_kuberay._support.toolchain.components import ensure_component
from pytest_kuberay._support.toolchain.crds import crd_dir
from pytest_kuberay._support.toolchain.go import fmt_seconds, go_binary
from pytest_kuberay._support.toolchain.operator import ensure_operator
from pytest_kuberay._support.toolchain.recipes import COMPONENTS, SERVED_OPERATOR_RELEASES, component
from pytest_kuberay.errors import ToolchainError


def _version_line(path: Path, args: Sequence[str]) -> str:
    """First line a binary prints for its version command (sanity check of the build)."""
    try:
        proc = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<failed: {exc}>"
    text = (proc.stdout or proc.stderr).strip()
    return " | ".join(line.strip() for line in text.splitlines()[:3] if line.strip())


def _operator_version_line(path: Path) -> str:
    """The operator has no --version flag; ``go version -m`` shows the module version it was built from."""
    proc = subprocess.run([go_binary(), "version", "-m", str(path)], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod":
            return f"{parts[1]} {parts[2]}"
    return proc.stdout.splitlines()[0] if proc.stdout else proc.stderr.strip()


def main(argv: Sequence[str] | None = None, prog: str = "python -m pytest_kuberay._support.toolchain") -> int:
    """Prebuild the local provider's binaries (``make toolchain``) and print where they are."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build (or reuse) the binaries of the Docker-free local provider.",
    )
    parser.add_argument(
        "--kuberay-version",
        default="v1.5.0,v1.5.0+pr4212",
        help="comma-separated operator versions to build (default: %(default)s)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"also build every served release ({', '.join(SERVED_OPERATOR_RELEASES)})",
    )
    parser.add_argument(
        "--components",
        default=",".join(COMPONENTS),
        help="comma-separated components (default: %(default)s); empty for none",
    )
    parser.add_argument(
        "--operator-source",
        type=Path,
        default=None,
        help="also build the operator from this kuberay checkout (labelled 'dev')",
    )
    parser.add_argument("--check", action="store_true", help="run each binary's version command")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    components = [c.strip() for c in args.components.split(",") if c.strip()]
    versions = [v.strip() for v in args.kuberay_version.split(",") if v.strip()]
    if args.all:
        versions += [v for v in SERVED_OPERATOR_RELEASES if v not in versions]

    jobs: list[tuple[str, Callable[[], Path], Callable[[Path], str]]] = []
    for name in components:
        comp = component(name)
        jobs.append((name, partial(ensure_component, name), partial(_version_line, args=comp.version_args)))
    for version in versions:
        build_op = partial(ensure_operator, version)
        jobs.append((f"kuberay-operator {version}", build_op, _operator_version_line))
    if args.operator_source is not None:
        jobs.append(
            (
                "kuberay-operator dev (source)",
                partial(ensure_operator, "dev", args.operator_source),
                _operator_version_line,
            )
        )

    failed = 0
    for what, ensure, check in jobs:
        started = time.monotonic()
        try:
            path = ensure()
        except ToolchainError as exc:
            failed += 1
            print(f"FAILED {what}: {exc}", file=sys.stderr)
            continue
        line = f"{what:32} {fmt_seconds(time.monotonic() - started):>7}  {path}"
        if args.check:
            line += f"\n{'':41}{check(path)}"
        print(line, flush=True)
    for kind, version in [("gateway-api", None), *(("kuberay", v) for v in versions)]:
        try:
            print(f"CRDs {kind} {version or ''}".rstrip() + f": {crd_dir(kind, version)}")
        except ToolchainError as exc:
            failed += 1
            print(f"FAILED CRDs {kind} {version or ''}: {exc}", file=sys.stderr)
    return 1 if failed else 0
