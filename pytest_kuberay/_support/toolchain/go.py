"""Running the ``go`` command: its environment, the version check, a build with a kept log, module downloads."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_kuberay._support.cache import cache_root
from pytest_kuberay._support.toolchain.recipes import MIN_GO, go_version_tuple
from pytest_kuberay.errors import ToolchainError

log = logging.getLogger(__name__)


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            f"`go` is not on PATH. The local provider builds etcd, Kubernetes, Traefik and the KubeRay "
            f"operator from source: install Go >= {MIN_GO} (https://go.dev/dl/) and put its bin/ on PATH, "
            "or use another provider (e.g. --kuberay-provider=kind)."
        )
    return go


def go_env(*names: str) -> dict[str, str]:
    """Values from ``go env`` (merges the environment with Go's own env file)."""
    proc = subprocess.run([go_binary(), "env", "-json", *names], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"`go env` failed: {proc.stderr.strip()}")
    values: dict[str, str] = json.loads(proc.stdout or "{}")
    return values


def build_env(**extra: str) -> dict[str, str]:
    """Environment for every go command here.

    -buildvcs=false: module-cache and copied sources have no VCS data. CGO off: static binaries,
    no C toolchain needed. GOWORK off: a go.work around the checkout must not change the pins.
    """
    env = dict(os.environ)
    goflags = go_env("GOFLAGS").get("GOFLAGS", "").split()
    if not any(flag.startswith("-buildvcs") for flag in goflags):
        goflags.append("-buildvcs=false")
    env["GOFLAGS"] = " ".join(goflags)
    env["CGO_ENABLED"] = "0"
    env["GOWORK"] = "off"
    env.update(extra)
    return env


def check_go_version(required: str | None, what: str) -> None:
    """Fail early with a readable message instead of Go's 'go.mod requires go >= ...'."""
    if not required:
        return
    info = go_env("GOVERSION", "GOTOOLCHAIN")
    have = info.get("GOVERSION", "")
    if info.get("GOTOOLCHAIN", "local") != "local":
        return  # Go downloads the toolchain the go.mod asks for by itself
    if go_version_tuple(have) < go_version_tuple(required):
        raise ToolchainError(
            f"building {what} needs Go >= {required}, but `go` on PATH is {have}: install a newer Go "
            "(https://go.dev/dl/) or set GOTOOLCHAIN=auto so Go fetches it."
        )



def _tail(path: Path, lines: int = 20) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def notify(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_go(args: Sequence[str], *, cwd: Path, env: dict[str, str], log_path: Path, what: str) -> None:
    """Run a ``go build -v``-style command, keep its whole output in ``log_path``, show a package count.

    Raises ToolchainError pointing at the log (with its tail) when the command fails.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    compiled = downloaded = 0
    last_report = started
    with open(log_path, "w") as out:
        out.write(f"$ cd {cwd} && {' '.join(args)}\n")
        out.flush()
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            stripped = line.strip()
            if stripped.startswith("go: downloading"):
                downloaded += 1
            elif stripped and " " not in stripped and not stripped.startswith("#"):
                compiled += 1  # `go build -v` prints one import path per package it compiles
            now = time.monotonic()
            if interactive and now - last_report >= 1:
                print(
                    f"\r  {what}: {compiled} packages compiled, {fmt_seconds(now - started)}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                last_report = now
            elif not interactive and now - last_report >= 60:
                notify(f"  {what}: {compiled} packages compiled, {fmt_seconds(now - started)}")
                last_report = now
        rc = proc.wait()
        out.write(f"# exit {rc} after {time.monotonic() - started:.1f}s\n")
    if interactive:
        print(file=sys.stderr)
    log.debug("%s: %d packages compiled, %d modules downloaded", what, compiled, downloaded)
    if rc != 0:
        raise ToolchainError(
            f"building {what} failed (go exit status {rc}). Full build log: {log_path}\nLast lines:\n{_tail(log_path)}"
        )


def module_info(module: str, version: str, *, env: dict[str, str] | None = None) -> dict[str, object]:
    """``go mod download -json module@version``: puts it in the module cache and says where (Dir)."""
    proc = subprocess.run(
        [go_binary(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=neutral_cwd(),
        env=env or build_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info: dict[str, object] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {"Error": (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"}
    if proc.returncode != 0 and "Error" not in info:
        info["Error"] = proc.stderr.strip() or f"exit status {proc.returncode}"
    return info


def neutral_cwd() -> Path:
    """A directory outside any Go module, so ``go mod download m@v`` and ``go install m@v`` act globally."""
    path = cache_root() / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path
