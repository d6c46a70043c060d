"""The pod's holder: PID 1 of the pod's PID namespace, owner of its mount namespace.

The node agent starts it as
``setpriv --pdeathsig KILL -- nsenter --net=<netns> -- unshare --mount --uts --ipc --pid --fork
--mount-proc --propagation private --kill-child=SIGKILL -- python -I holder.py <spec.json>``.
It builds the pod's private view of the file system (the host never sees any of it), sets
the hostname, prints ``READY`` (or ``ERROR: ...``) on stdout, then reaps orphans until it
is killed. When it dies, the kernel kills every process left in the pod's PID namespace and
frees the mount namespace with all its mounts: that is the pod's guaranteed teardown.

It is run by path with ``python -I`` and imports only the standard library, so it starts
in tens of milliseconds and does not depend on the package being importable.

Mount recipe (FACTS.md section 8), for each mount in the spec, parents first:

1. Mount a tmpfs on the pod's stash directory and ``chdir`` into it. Every later mount
   source is reached through the working directory, so it stays usable after its host path
   is hidden (for example by the pod's private ``/tmp``).
2. Bind every source (host directory or file) into the stash; memory volumes are tmpfs
   mounts in the stash, so several mount paths share one.
3. Mount each target: if it exists, bind onto it. If not, create it: directly when its
   deepest existing parent lies in a writable mount of ours, else overlay that parent with a
   writable layer (in the stash tmpfs), moving any mounts below it out of the way and back.
   When that parent is ``/`` itself (a new top-level directory such as ``/data``), the pod
   switches to an overlay of the whole root instead, the way a container runtime does.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import signal
import socket
import sys
from pathlib import PurePosixPath
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class MountError(Exception):
    """A mount the pod needs could not be made; the message names it."""


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(f"mount({source!r}, {target!r}, {fstype}, {flags:#x}, {data!r}): {os.strerror(err)}")


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise MountError(f"umount2({target!r}): {os.strerror(err)}")


def _unescape(field: str) -> str:
    """Mount points in /proc/self/mountinfo escape space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1 : i + 4]) == 3 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount in this mount namespace, in mount order."""
    result = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields = left.split()
            result.append((_unescape(fields[4]), right.split()[0]))
    return result


def _inside(path: str, parent: str) -> bool:
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


class Sandbox:
    """Builds the pod's mount namespace from the spec; one instance per holder."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.stash = str(spec["stash"])
        self.writable: list[str] = []  # targets of our writable mounts: mountpoints may be created below them
        self._counter = 0

    def _scratch(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"

    def build(self) -> None:
        self._detach_netns_mounts()
        _mount("pytest-kuberay-stash", self.stash, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700")
        os.chdir(self.stash)
        sources: dict[str, str] = {}
        for mount in self.spec["mounts"]:
            key = str(mount["source_key"])
            if key in sources:
                continue
            name = self._scratch("src")
            if mount.get("tmpfs") is not None:
                os.mkdir(name)
                size = mount["tmpfs"].get("size")
                _mount("tmpfs", name, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}" if size else None)
            else:
                source = str(mount["source"])
                if os.path.isdir(source):
                    os.mkdir(name)
                else:
                    open(name, "w").close()
                _mount(source, name, None, MS_BIND | MS_REC)
            sources[key] = name
        ordered = sorted(self.spec["mounts"], key=lambda m: len(PurePosixPath(str(m["target"])).parts))
        for mount in ordered:
            self._mount_target(f"./{sources[str(mount['source_key'])]}", mount)
        hostname = self.spec.get("hostname")
        if hostname:
            socket.sethostname(str(hostname))

    def _detach_netns_mounts(self) -> None:
        """Drop our copies of every ``ip netns`` handle (nsfs mounts).

        This mount namespace was copied from the host's, handles of other pods included; a
        copy would keep another pod's network namespace alive after ``ip netns del``.
        """
        for target, fstype in reversed(_mounts()):
            if fstype == "nsfs":
                with contextlib.suppress(MountError):
                    _umount(target)

    def _mount_target(self, source: str, mount: dict[str, Any]) -> None:
        target = os.path.normpath(str(mount["target"]))
        is_dir = os.path.isdir(source)
        if not os.path.lexists(target):
            self._create_mountpoint(target, is_dir)
        _mount(source, target, None, MS_BIND | MS_REC)
        if mount.get("readonly"):
            _mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        elif is_dir:
            self.writable.append(os.path.realpath(target))

    def _create_mountpoint(self, target: str, is_dir: bool) -> None:
        missing: list[str] = []
        parent = target
        while not os.path.lexists(parent):
            parent, name = os.path.split(parent)
            missing.insert(0, name)
        parent = os.path.realpath(parent)
        if not any(_inside(parent, ours) for ours in self.writable):
            self._overlay(parent)
        path = parent
        for i, name in enumerate(missing):
            path = os.path.join(path, name)
            if i < len(missing) - 1 or is_dir:
                os.makedirs(path, exist_ok=True)
            else:
                open(path, "a").close()

    def _overlay(self, directory: str) -> None:
        """Lay a writable layer over ``directory``, keeping every mount below it in place."""
        if directory == "/":
            self._overlay_root()
            return
        below = [
            path
            for path, _ in _mounts()
            if path != directory
            and _inside(path, directory)
            and not _inside(self.stash, path)
            and not _inside(path, self.stash)
        ]
        # Only the topmost ones: moving a mount takes the mounts below it along.
        topmost = [p for p in dict.fromkeys(below) if not any(q != p and _inside(p, q) for q in below)]
        kept: list[tuple[str, str]] = []
        for path in topmost:
            keep = self._scratch("keep")
            if os.path.isdir(path):
                os.mkdir(keep)
            else:
                open(keep, "w").close()
            _mount(path, keep, None, MS_MOVE)
            kept.append((keep, path))
        layer = self._scratch("layer")
        os.makedirs(f"{layer}/upper")
        os.makedirs(f"{layer}/work")
        # Relative paths: the kernel resolves them against our working directory, the stash,
        # whose own path may already be hidden (by the pod's private /tmp).
        _mount("overlay", directory, "overlay", 0, f"lowerdir={directory},upperdir={layer}/upper,workdir={layer}/work")
        for keep, path in kept:
            _mount(keep, path, None, MS_MOVE)
        self.writable.append(directory)


    def _overlay_root(self) -> None:
        """Switch to a writable overlay of ``/`` carrying every mount over (a mountpoint at a new top-level dir).

        Like a container runtime's switch_root: build the new root beside the old one, bind
        every top-level mount into it, move it onto ``/`` and chroot. Processes entering the
        namespace later (nsenter -m) land on the topmost mount at ``/``, the new root.
        """
        layer = self._scratch("layer")
        os.makedirs(f"{layer}/upper")
        os.makedirs(f"{layer}/work")
        new_root = self._scratch("root")
        os.mkdir(new_root)
        _mount("overlay", new_root, "overlay", 0, f"lowerdir=/,upperdir={layer}/upper,workdir={layer}/work")
        stash = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            children = [path for path, _ in _mounts() if path != "/" and not _inside(path, self.stash)]
            topmost = [p for p in dict.fromkeys(children) if not any(q != p and _inside(p, q) for q in children)]
            for path in topmost:
                dest = f"{new_root}{path}"
                if os.path.isdir(path):
                    os.makedirs(dest, exist_ok=True)
                elif not os.path.lexists(dest):
                    open(dest, "a").close()
                _mount(path, dest, None, MS_BIND | MS_REC)
            os.chdir(new_root)
            _mount(".", "/", None, MS_MOVE)
            os.chroot(".")
            os.fchdir(stash)  # the stash stays reachable through the descriptor, whatever its path now is
        finally:
            os.close(stash)
        self.writable.append("/")


def _reap(_signum: int = 0, _frame: object = None) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _stop(_signum: int, _frame: object) -> None:
    os._exit(0)


def main(argv: list[str]) -> int:
    """Build the sandbox from the spec file ``argv[1]``, say READY, then reap until killed."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGCHLD, _reap)
    try:
        with open(argv[1]) as handle:
            spec = json.load(handle)
        Sandbox(spec).build()
    except (MountError, OSError, KeyError, ValueError) as exc:
        print(f"ERROR: {exc}", flush=True)
        return 1
    print("READY", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    os.chdir("/")
    _reap()
    while True:
        try:
            signal.pause()
        except InterruptedError:  # pragma: no cover - pause() restarts on signals in Python 3.5+
            continue
        except OSError as exc:  # pragma: no cover
            if exc.errno != errno.EINTR:
                raise


if __name__ == "__main__":
    sys.exit(main(sys.argv))
