"""The binary cache: ``bin/<name>/<version>/`` with a build record, built once under a per-binary lock.

Several pytest-xdist workers may ask for the same binary at once: one builds, the others wait and reuse it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_kuberay._support.cache import cache_root
from pytest_kuberay._support.toolchain.go import fmt_seconds, go_env, notify
from pytest_kuberay.errors import ToolchainError

log = logging.getLogger(__name__)

#: A build step: (temporary output path, build log path) -> None; raises ToolchainError on failure.
BuildFn = Callable[[Path, Path], None]

@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive file lock (filelock), so concurrent pytest-xdist workers build a binary only once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    waited = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process building %s", lock_path.stem)
        lock.acquire()
        log.info("lock %s acquired after %.0fs", lock_path.name, time.monotonic() - waited)
    try:
        yield
    finally:
        lock.release()


def build_record_path(binary: Path, suffix: str = "json") -> Path:
    """``build.json``/``build.log`` beside a binary; ``<name>.build.json`` where binaries share a directory."""
    shared = binary.parent.parent.name != binary.name
    return binary.parent / (f"{binary.name}.build.{suffix}" if shared else f"build.{suffix}")


def _install(built: Path, dest: Path, meta: dict[str, object]) -> None:
    """Move a finished binary into place atomically and record how it was built."""
    built.chmod(built.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    build_record_path(dest).write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(built, dest)  # last: an existing dest always means a complete build


def build_binary(what: str, dest: Path, build: BuildFn, extra_meta: dict[str, object] | None = None) -> Path:
    """Reuse ``dest`` or build it under its lock: build to a temp path, then rename over ``dest``."""
    if dest.is_file():
        return dest
    lock = cache_root() / "locks" / f"{dest.parent.parent.name}@{dest.parent.name}.lock"
    with _locked(lock):
        if dest.is_file():  # another worker finished it while we waited
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        log_path = build_record_path(dest, "log")
        notify(
            f"pytest-kuberay: building {what} from source with Go (the first build takes minutes; "
            f"later runs reuse it). Log: {log_path}"
        )
        started = time.monotonic()
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        try:
            build(tmp, log_path)
            if not tmp.is_file():
                raise ToolchainError(f"building {what} produced no binary; see {log_path}")
            seconds = time.monotonic() - started
            meta: dict[str, object] = {
                "what": what,
                "build_seconds": round(seconds, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "go": go_env("GOVERSION").get("GOVERSION", ""),
                **(extra_meta or {}),
            }
            _install(tmp, dest, meta)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        notify(f"pytest-kuberay: built {what} in {fmt_seconds(seconds)}: {dest}")
        log.debug("built %s in %.0fs: %s", what, seconds, dest)
        return dest
