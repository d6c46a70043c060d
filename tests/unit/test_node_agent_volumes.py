"""Volume contents and mount specs, kubeconfig credentials and the agent's state file (pure, no cluster)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kuberay.providers.local.node_agent.holder import _inside, _unescape
from pytest_kuberay.providers.local.node_agent.kube import KubeCredentials
from pytest_kuberay.providers.local.node_agent.pod_network import PodNetwork
from pytest_kuberay.providers.local.node_agent.pod_sandbox import MountSpec, PodSandbox
from pytest_kuberay.providers.local.node_agent.state import AgentState, recorded_pods
from pytest_kuberay.providers.local.node_agent.volumes import PodVolumes, VolumeError

JSON = dict[str, Any]


class FakeApi:
    """ConfigMaps, Secrets and tokens from dicts; counts token requests."""

    def __init__(self) -> None:
        self.configmaps: dict[str, JSON] = {
            "ns/apps": {"data": {"app.py": "print('hi')", "other.py": "x = 1"}},
            "ns/kube-root-ca.crt": {"data": {"ca.crt": "CA PEM"}},
        }
        self.secrets: dict[str, JSON] = {"ns/creds": {"data": {"password": base64.b64encode(b"pw").decode()}}}
        self.token_requests: list[tuple[str, list[str], int]] = []

    def configmap(self, namespace: str, name: str) -> JSON | None:
        return self.configmaps.get(f"{namespace}/{name}")

    def secret(self, namespace: str, name: str) -> JSON | None:
        return self.secrets.get(f"{namespace}/{name}")

    def request_token(
        self, namespace: str, service_account: str, *, audiences: list[str], expiration_seconds: int, pod: JSON
    ) -> tuple[str, float]:
        self.token_requests.append((service_account, audiences, expiration_seconds))
        return f"token-{len(self.token_requests)}", float(expiration_seconds)


def _pod() -> JSON:
    return {
        "metadata": {"name": "head", "namespace": "ns", "uid": "uid-1", "labels": {"app": "ray"}},
        "spec": {
            "serviceAccountName": "ray",
            "containers": [
                {
                    "name": "ray-head",
                    "image": "rayproject/ray:2.46.0",
                    "volumeMounts": [
                        {"name": "logs", "mountPath": "/tmp/ray"},
                        {"name": "shm", "mountPath": "/dev/shm"},
                        {"name": "apps", "mountPath": "/home/ray/apps/echo"},
                        {"name": "creds", "mountPath": "/etc/creds", "readOnly": False},
                    ],
                },
                {
                    "name": "autoscaler",
                    "image": "rayproject/ray:2.46.0",
                    "volumeMounts": [
                        {"name": "logs", "mountPath": "/tmp/ray"},
                        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                        {"name": "info", "mountPath": "/etc/podinfo"},
                    ],
                },
            ],
            "volumes": [
                {"name": "logs", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {"name": "apps", "configMap": {"name": "apps", "items": [{"key": "app.py", "path": "echo/app.py"}]}},
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o600}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 0o644,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {
                                "downwardAPI": {
                                    "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                                }
                            },
                        ],
                    },
                },
                {
                    "name": "info",
                    "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
                },
            ],
        },
    }


def _volumes(tmp_path: Path, pod: JSON, api: FakeApi) -> PodVolumes:
    sandbox = PodSandbox(tmp_path / "pod", PodNetwork("pkr9", "10.244.9.10", 24, "10.244.9.1"))
    sandbox.make_dirs()
    return PodVolumes(pod, sandbox, objects=api, tokens=api, allocatable={"cpu": "64"})


def test_volume_contents(tmp_path: Path) -> None:
    api = FakeApi()
    volumes = _volumes(tmp_path, _pod(), api)
    volumes.materialize()
    root = tmp_path / "pod" / "volumes"
    assert (root / "logs").is_dir()
    assert (root / "apps" / "echo" / "app.py").read_text() == "print('hi')"
    assert not (root / "apps" / "other.py").exists()  # items select keys
    assert (root / "creds" / "password").read_bytes() == b"pw"
    assert (root / "creds" / "password").stat().st_mode & 0o777 == 0o600
    access = root / "kube-api-access"
    assert (access / "token").read_text() == "token-1"
    assert (access / "ca.crt").read_text() == "CA PEM"
    assert (access / "namespace").read_text() == "ns"
    assert (root / "info" / "labels").read_text() == 'app="ray"'
    assert api.token_requests == [("ray", [], 3607)]
    volumes.materialize()  # a refresh before 80% of the token's life reuses it
    assert len(api.token_requests) == 1
    assert not volumes.refresh_due()


def test_a_missing_configmap_is_retried_not_fatal(tmp_path: Path) -> None:
    api = FakeApi()
    del api.configmaps["ns/apps"]
    with pytest.raises(VolumeError, match='ConfigMap "apps" not found'):
        _volumes(tmp_path, _pod(), api).materialize()


def test_mount_specs(tmp_path: Path) -> None:
    volumes = _volumes(tmp_path, _pod(), FakeApi())
    mounts = {m.target: m for m in volumes.mounts(private_home="/home/ray")}
    pod_dir = tmp_path / "pod"
    assert mounts["/tmp/ray"] == MountSpec("/tmp/ray", "vol:logs/", pod_dir / "volumes" / "logs")
    assert mounts["/dev/shm"].tmpfs and mounts["/dev/shm"].tmpfs_size == str(2**30)  # the volume, not the default
    assert mounts["/home/ray/apps/echo"].readonly  # configMap volumes are read-only
    assert mounts["/etc/creds"].readonly
    assert mounts["/var/run/secrets/kubernetes.io/serviceaccount"].readonly
    assert mounts["/tmp"].source == pod_dir / "rootfs" / "tmp"
    assert mounts["/home/ray"].source == pod_dir / "home"
    assert {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} <= set(mounts)
    assert oct(os.stat(pod_dir / "rootfs" / "tmp").st_mode & 0o7777) == "0o1777"


def test_unsupported_volume_types_say_so(tmp_path: Path) -> None:
    pod = _pod()
    pod["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}})
    with pytest.raises(VolumeError, match="persistentVolumeClaim"):
        _volumes(tmp_path, pod, FakeApi()).materialize()


def test_kubeconfig_with_embedded_credentials(tmp_path: Path) -> None:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    cluster = {"server": "https://10.244.0.1:6443/", "certificate-authority-data": b64(b"CA")}
    user = {"client-certificate-data": b64(b"CRT"), "client-key-data": b64(b"KEY")}
    config = {
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    creds = KubeCredentials.from_kubeconfig(path, tmp_path / "secrets")
    assert creds.server == "https://10.244.0.1:6443"
    assert creds.ca_file is not None and creds.ca_file.read_bytes() == b"CA"
    assert creds.key_file is not None and creds.key_file.read_bytes() == b"KEY"
    assert creds.key_file.stat().st_mode & 0o777 == 0o600


def test_state_file_records_pods(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    state.save()
    state.add_pod("uid-1", name="ns/p", netns="pkr0-p10", host_veth="pkr0v10", ip="10.244.0.10", pod_dir="/x")
    state.add_process("uid-1", os.getpid())
    pods = recorded_pods(tmp_path)
    assert pods["ns/p"].holder_pid == os.getpid()
    assert pods["ns/p"].netns == "pkr0-p10"
    state.remove_pod("uid-1")
    assert recorded_pods(tmp_path) == {}


def test_holder_path_helpers() -> None:
    assert _unescape(r"/mnt/with\040space") == "/mnt/with space"
    assert _inside("/home/ray", "/home") and _inside("/home", "/home") and _inside("/x", "/")
    assert not _inside("/homeless", "/home")
