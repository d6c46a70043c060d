"""Where built images are kept between runs, and the lock that lets one process build each of them."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_kuberay._support.toolchain import cache_root

__all__ = ["build_records", "cached_build", "images_dir", "progress"]

log = logging.getLogger(__name__)


def images_dir() -> Path:
    """``<cache>/images``: OCI archives and the wheels and rootfs tarballs they are made from."""
    return cache_root() / "images"


def progress(message: str) -> None:
    """A line for the person waiting on a first build (stderr, so pytest's capture does not hide it)."""
    print(f"pytest-kuberay: {message}", file=sys.stderr, flush=True)


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


@contextlib.contextmanager
def cached_build(name: str, what: str) -> Iterator[tuple[Path, Path | None]]:
    """``(final path, work dir)``: build into ``work dir`` only when ``final`` does not exist yet.

    The work dir is None when the artifact is cached (nothing to do). Otherwise the caller
    writes the artifact to ``<work>/out`` and it is moved to ``final`` atomically on success;
    the work dir is removed either way. A file lock per artifact makes concurrent sessions
    and pytest-xdist workers build it once.
    """
    final = images_dir() / _key(name)
    if final.exists():
        yield final, None
        return
    locks = images_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{_key(name)}.lock")):
        if final.exists():  # built by someone else while we waited
            yield final, None
            return
        started = time.monotonic()
        progress(f"building {what} (first time only; cached in {final.parent})")
        work = Path(tempfile.mkdtemp(prefix=f".{_key(name)}-", dir=images_dir()))
        try:
            yield final, work
            out = work / "out"
            if not out.exists():
                raise RuntimeError(f"building {what} produced nothing")
            out.replace(final)
            seconds = time.monotonic() - started
            _record_path(final).write_text(json.dumps({"what": what, "build_seconds": round(seconds, 1),
                                                       "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"built {what} in {seconds:.0f}s: {final}")


def _record_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".build.json")


def build_records() -> list[dict[str, Any]]:
    """What was built into the image cache, how long each took and when (for benchmarks)."""
    records = []
    for path in sorted(images_dir().glob("*.build.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return records
