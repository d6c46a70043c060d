"""A pod's volumes as host directories, and the mounts that put them (and the pod's private dirs) in place.

Supported volume types:

* ``emptyDir``: a host directory under the pod directory (so Ray's ``/tmp/ray`` logs stay
  readable on the host until the pod is deleted); ``medium: Memory`` is a tmpfs (with
  ``sizeLimit``), shared by every mount of the volume.
* ``configMap``, ``secret``: files written from the API object, honouring ``items``,
  ``defaultMode``/``mode`` and ``optional``.
* ``projected``: ``serviceAccountToken`` (from the TokenRequest API, for the pod's service
  account, bound to the pod, with the requested audience and expiration, refreshed at 80%
  of its lifetime), ``configMap``, ``secret`` and ``downwardAPI`` sources. That covers the
  ``kube-api-access-*`` volume the ServiceAccount admission plugin adds at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` (token, ca.crt, namespace).
* ``downwardAPI``: fieldRef and resourceFieldRef items.
* ``hostPath``: the host path itself.

Files are replaced by rename inside their directory (the directory is what is
bind-mounted, so the pod sees the new file); :meth:`PodVolumes.refresh` re-reads the API
objects periodically, as the kubelet does. ConfigMap, Secret, projected and downwardAPI
volumes are mounted read-only, like the kubelet does.

Every pod also gets a private ``/tmp``, a 64 MiB tmpfs on ``/dev/shm`` unless a volume is
mounted there, a private home directory for Ray images, and its own ``/etc/hosts``,
``/etc/resolv.conf`` and ``/etc/hostname``. All containers of a pod share one mount
namespace, so they see the union of their volumeMounts; two containers mounting different
volumes at the same path is reported and the first mount wins.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pytest_kuberay.providers.local.node_agent.env import ConfigError, ObjectSource, field_value, resource_value
from pytest_kuberay.providers.local.node_agent.pod_sandbox import MountSpec, PodSandbox
from pytest_kuberay.providers.local.node_agent.quantity import parse_quantity

__all__ = ["DEFAULT_SHM_SIZE", "PodVolumes", "TokenSource", "VolumeError"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

DEFAULT_SHM_SIZE = "64m"
_READ_ONLY_KINDS = ("configMap", "secret", "projected", "downwardAPI")
_TOKEN_REFRESH_FRACTION = 0.8


class VolumeError(Exception):
    """A volume cannot be prepared yet (the kubelet's FailedMount): missing object, unsupported type."""


class TokenSource(Protocol):
    """Issues service-account tokens (the TokenRequest API)."""

    def request_token(
        self, namespace: str, service_account: str, *, audiences: list[str], expiration_seconds: int, pod: JSON
    ) -> tuple[str, float]:
        """A token and its lifetime in seconds."""


@dataclass
class _Token:
    expires_refresh_at: float = 0.0
    value: str = ""


@dataclass
class _Written:
    files: dict[str, set[str]] = field(default_factory=dict)  # volume -> relative paths we wrote


def _write_file(directory: Path, rel: str, data: bytes, mode: int) -> None:
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode:
            return
    except OSError:
        pass
    tmp = path.with_name(f"..{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_values(obj: JSON, *, secret: bool) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        values[key] = base64.b64decode(value) if secret else str(value).encode()
    if not secret:
        for key, value in (obj.get("binaryData") or {}).items():
            values[key] = base64.b64decode(value)
    return values


class PodVolumes:
    """Writes a pod's volumes into its sandbox directory and says how to mount them."""

    def __init__(
        self,
        pod: JSON,
        sandbox: PodSandbox,
        *,
        objects: ObjectSource,
        tokens: TokenSource,
        allocatable: Mapping[str, str],
    ) -> None:
        self.pod = pod
        self.sandbox = sandbox
        self.objects = objects
        self.tokens = tokens
        self.allocatable = allocatable
        self._tokens: dict[str, _Token] = {}
        self._written = _Written()
        self._next_refresh = 0.0

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return str(self.pod["metadata"]["namespace"])

    def volumes(self) -> dict[str, JSON]:
        """The pod's volumes by name."""
        return {v["name"]: v for v in self.pod["spec"].get("volumes") or []}

    # ------------------------------------------------------------------------------ content

    def materialize(self) -> None:
        """Write every volume's content (idempotent); raises VolumeError when one cannot be made yet."""
        for name, volume in self.volumes().items():
            directory = self.sandbox.volume_dir(name)
            files: dict[str, tuple[bytes, int]] = {}
            if "emptyDir" in volume:
                directory.mkdir(parents=True, exist_ok=True)
                continue
            if "hostPath" in volume:
                self._host_path(volume["hostPath"])
                continue
            if "configMap" in volume or "secret" in volume:
                secret = "secret" in volume
                source = volume["secret" if secret else "configMap"]
                default_mode = int(source.get("defaultMode", 0o644))
                ref = {"name": source.get("secretName" if secret else "name"), **source}
                files.update(self._object_files(ref, secret=secret, default_mode=default_mode))
            elif "projected" in volume:
                default_mode = int(volume["projected"].get("defaultMode", 0o644))
                for item in volume["projected"].get("sources") or []:
                    files.update(self._projection(name, item, default_mode))
            elif "downwardAPI" in volume:
                default_mode = int(volume["downwardAPI"].get("defaultMode", 0o644))
                files.update(self._downward(volume["downwardAPI"].get("items") or [], default_mode))
            else:
                kinds = sorted(set(volume) - {"name"})
                raise VolumeError(f"volume {name!r}: type {kinds} is not supported by the local node agent")
            directory.mkdir(parents=True, exist_ok=True)
            for rel, (data, mode) in files.items():
                _write_file(directory, rel, data, mode)
            for stale in self._written.files.get(name, set()) - set(files):
                (directory / stale).unlink(missing_ok=True)
            self._written.files[name] = set(files)
        self._next_refresh = time.monotonic() + 30.0

    def refresh_due(self) -> bool:
        """True when contents should be re-read: every 30 s, and before a token reaches 80% of its lifetime."""
        now = time.monotonic()
        return now >= self._next_refresh or any(now >= t.expires_refresh_at for t in self._tokens.values())

    def _host_path(self, source: JSON) -> None:
        path = Path(source["path"])
        kind = source.get("type", "")
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif not path.exists() and kind:
            raise VolumeError(f"hostPath {path} does not exist (type {kind})")

    def _object_files(self, ref: JSON, *, secret: bool, default_mode: int) -> dict[str, tuple[bytes, int]]:
        kind = "Secret" if secret else "ConfigMap"
        name = str(ref["name"])
        obj = self.objects.secret(self.namespace, name) if secret else self.objects.configmap(self.namespace, name)
        if obj is None:
            if ref.get("optional"):
                return {}
            raise VolumeError(f'{kind} "{name}" not found')
        values = _key_values(obj, secret=secret)
        items = ref.get("items")
        if not items:
            return {key: (value, default_mode) for key, value in values.items()}
        files: dict[str, tuple[bytes, int]] = {}
        for item in items:
            if item["key"] not in values:
                if ref.get("optional"):
                    continue
                raise VolumeError(f"{kind} {self.namespace}/{name} has no key {item['key']!r}")
            files[item["path"]] = (values[item["key"]], int(item.get("mode", default_mode)))
        return files

    def _downward(self, items: list[JSON], default_mode: int) -> dict[str, tuple[bytes, int]]:
        files: dict[str, tuple[bytes, int]] = {}
        try:
            for item in items:
                if "fieldRef" in item:
                    value = field_value(self.pod, item["fieldRef"]["fieldPath"])
                else:
                    value = resource_value(self.pod, item["resourceFieldRef"], self.allocatable)
                files[item["path"]] = (value.encode(), int(item.get("mode", default_mode)))
        except ConfigError as exc:
            raise VolumeError(str(exc)) from exc
        return files

    def _projection(self, volume: str, item: JSON, default_mode: int) -> dict[str, tuple[bytes, int]]:
        if "serviceAccountToken" in item:
            source = item["serviceAccountToken"]
            token = self._token(volume, source)
            return {source["path"]: (token.encode(), int(source.get("mode", default_mode)))}
        if "configMap" in item:
            return self._object_files(item["configMap"], secret=False, default_mode=default_mode)
        if "secret" in item:
            return self._object_files(item["secret"], secret=True, default_mode=default_mode)
        if "downwardAPI" in item:
            return self._downward(item["downwardAPI"].get("items") or [], default_mode)
        raise VolumeError(f"volume {volume!r}: projected source {sorted(item)} is not supported")

    def _token(self, volume: str, source: JSON) -> str:
        key = f"{volume}/{source['path']}"
        current = self._tokens.get(key)
        if current is not None and time.monotonic() < current.expires_refresh_at:
            return current.value
        audience = source.get("audience")
        spec = self.pod["spec"]
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        value, lifetime = self.tokens.request_token(
            self.namespace,
            account,
            audiences=[audience] if audience else [],
            expiration_seconds=int(source.get("expirationSeconds", 3600)),
            pod=self.pod,
        )
        self._tokens[key] = _Token(time.monotonic() + _TOKEN_REFRESH_FRACTION * lifetime, value)
        return value

    # ------------------------------------------------------------------------------- mounts

    def mounts(self, *, private_home: str | None, keep_visible: Sequence[Path] = ()) -> list[MountSpec]:
        """Every mount of the pod: its private dirs and the union of its containers' volumeMounts."""
        sandbox = self.sandbox
        by_target: dict[str, MountSpec] = {}
        volumes = self.volumes()
        containers = list(self.pod["spec"].get("initContainers") or []) + list(self.pod["spec"]["containers"])
        for container in containers:
            for mount in container.get("volumeMounts") or []:
                spec = self._mount_spec(volumes, mount, container["name"])
                existing = by_target.get(spec.target)
                if existing is not None and existing.source_key != spec.source_key:
                    log.warning(
                        "pod %s: containers mount different volumes at %s; all containers of a pod share one "
                        "mount namespace here, so %s wins",
                        self.pod["metadata"]["name"],
                        spec.target,
                        existing.source_key,
                    )
                    continue
                if existing is None or (existing.readonly and not spec.readonly):
                    by_target[spec.target] = spec
        defaults = [
            MountSpec("/tmp", "pod:tmp", sandbox.tmp_dir),
            MountSpec("/dev/shm", "pod:shm", tmpfs=True, tmpfs_size=DEFAULT_SHM_SIZE),
            MountSpec("/etc/hosts", "pod:hosts", sandbox.etc_dir / "hosts"),
            MountSpec("/etc/resolv.conf", "pod:resolv", sandbox.etc_dir / "resolv.conf"),
            MountSpec("/etc/hostname", "pod:hostname", sandbox.etc_dir / "hostname"),
        ]
        if private_home:
            defaults.append(MountSpec(private_home, "pod:home", sandbox.home_dir))
        # The Python env that stands in for Ray images must stay visible even when it lives under a
        # directory the pod gets privately (a checkout under /tmp, as CI clones may be).
        hidden = ["/tmp", *([private_home] if private_home else [])]
        for path in keep_visible:
            if any(Path(path).is_relative_to(root) for root in hidden):
                defaults.append(MountSpec(str(path), f"host:{path}", Path(path), readonly=True))
        for spec in defaults:
            by_target.setdefault(spec.target, spec)
        return list(by_target.values())

    def _mount_spec(self, volumes: Mapping[str, JSON], mount: JSON, container: str) -> MountSpec:
        name = mount["name"]
        if name not in volumes:
            raise VolumeError(f"container {container!r} mounts unknown volume {name!r}")
        volume = volumes[name]
        target = os.path.normpath(mount["mountPath"])
        if mount.get("subPathExpr"):
            raise VolumeError(f"container {container!r}: subPathExpr is not supported by the local node agent")
        sub_path = mount.get("subPath") or ""
        readonly = bool(mount.get("readOnly")) or any(kind in volume for kind in _READ_ONLY_KINDS)
        empty_dir = volume.get("emptyDir")
        if empty_dir is not None and empty_dir.get("medium") == "Memory" and not sub_path:
            size = empty_dir.get("sizeLimit")
            return MountSpec(target, f"vol:{name}", tmpfs=True, tmpfs_size=_tmpfs_size(size), readonly=readonly)
        source = Path(volume["hostPath"]["path"]) if "hostPath" in volume else self.sandbox.volume_dir(name)
        if sub_path:
            source = source / sub_path
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        return MountSpec(target, f"vol:{name}/{sub_path}", source, readonly=readonly)


def _tmpfs_size(size: str | None) -> str | None:
    """A Kubernetes quantity as a tmpfs ``size=`` value (bytes)."""
    if not size:
        return None
    return str(int(parse_quantity(size)))
