"""Pick the provider: ``auto`` is kind when a Docker engine answers, the local cluster otherwise."""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["docker_engine_answers", "resolve_provider"]


def docker_engine_answers(timeout: float = 5.0) -> bool:
    """True when ``docker info`` reaches an engine (the client alone is not enough for kind)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def resolve_provider(requested: str) -> str:
    if requested != "auto":
        return requested
    return "kind" if docker_engine_answers() else "local"
