"""Per-pod /etc/hosts, Endpoints bookkeeping and the image mapping (pure, no cluster)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pytest_kuberay.providers.local.node_agent.hosts import (
    RESOLV_CONF,
    ServiceDirectory,
    ServiceEndpoints,
    endpoints_from_object,
    render_hosts,
    write_in_place,
)
from pytest_kuberay.providers.local.node_agent.images import (
    RayVersionCheck,
    image_profile,
    installed_ray_version,
    is_ray_image,
    ray_tag,
)


def _endpoints(name: str, ready: list[str], not_ready: list[str] = []) -> dict[str, object]:  # noqa: B006
    return {
        "metadata": {"namespace": "ns", "name": name},
        "subsets": [
            {
                "addresses": [{"ip": ip} for ip in ready],
                "notReadyAddresses": [{"ip": ip, "hostname": "h"} for ip in not_ready],
            }
        ],
    }


def test_endpoints_include_ready_and_not_ready_addresses() -> None:
    svc = endpoints_from_object(_endpoints("head-svc", ["10.244.0.11"], ["10.244.0.10"]))
    assert svc == ServiceEndpoints("ns", "head-svc", (("10.244.0.10", "h"), ("10.244.0.11", None)))


def test_render_hosts_names_services_in_every_form() -> None:
    text = render_hosts(
        pod_ip="10.244.0.12",
        hostname="worker-1",
        namespace="ns",
        services=[
            ServiceEndpoints("ns", "head-svc", (("10.244.0.11", None),)),
            ServiceEndpoints("other", "api", (("10.244.0.20", "api-0"),)),
        ],
        host_aliases=[{"ip": "10.0.0.5", "hostnames": ["alias.example"]}],
    )
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.244.0.12\tworker-1" in lines
    assert "10.244.0.11\thead-svc.ns.svc.cluster.local head-svc.ns.svc head-svc.ns head-svc" in lines
    # Another namespace's Service has no short name here.
    assert "10.244.0.20\tapi.other.svc.cluster.local api.other.svc api.other" in lines
    assert "10.244.0.20\tapi-0.api.other.svc.cluster.local" in lines
    assert "10.0.0.5\talias.example" in lines


def test_resolv_conf_fails_fast() -> None:
    assert "nameserver 127.0.0.1" in RESOLV_CONF
    assert "options timeout:1 attempts:1" in RESOLV_CONF


def test_service_directory_reports_changes_only() -> None:
    directory = ServiceDirectory()
    assert directory.update("ADDED", _endpoints("a", ["10.244.0.10"]))
    assert not directory.update("MODIFIED", _endpoints("a", ["10.244.0.10"]))
    assert directory.update("MODIFIED", _endpoints("a", ["10.244.0.10", "10.244.0.11"]))
    assert not directory.update("ADDED", _endpoints("empty", []))
    assert [s.name for s in directory.snapshot()] == ["a"]
    assert directory.update("DELETED", _endpoints("a", []))
    assert directory.snapshot() == []
    assert directory.version == 3


def test_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("a much longer first version of the file\n")
    inode = os.stat(path).st_ino
    assert write_in_place(path, "short\n")
    assert path.read_text() == "short\n"
    assert os.stat(path).st_ino == inode  # a bind mount of the file keeps seeing it
    assert not write_in_place(path, "short\n")


@pytest.mark.parametrize(
    ("image", "ray", "tag"),
    [
        ("rayproject/ray:2.46.0", True, "2.46.0"),
        ("docker.io/rayproject/ray-ml:2.9.3-py310-gpu", True, "2.9.3"),
        ("rayproject/ray:nightly", True, None),
        ("registry:5000/org/my-ray-app:1.0.0@sha256:abc", True, "1.0.0"),
        ("python:3.11", False, None),
        ("quay.io/kuberay/operator:v1.5.0", False, None),
    ],
)
def test_image_mapping(image: str, ray: bool, tag: str | None) -> None:
    assert is_ray_image(image) is ray
    if ray:
        assert ray_tag(image) == tag


def test_ray_images_run_on_the_python_env(tmp_path: Path) -> None:
    profile = image_profile("rayproject/ray:2.46.0", tmp_path / "venv", host_path="/host/bin")
    assert profile.path.split(":")[0] == str(tmp_path / "venv" / "bin")
    assert (profile.home, profile.workdir, profile.private_home) == ("/home/ray", "/home/ray", True)
    other = image_profile("python:3.11", tmp_path / "venv", host_path="/host/bin")
    assert (other.path, other.home, other.workdir, other.private_home) == ("/host/bin", "/root", "/", False)


def test_ray_version_mismatch_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "lib" / "python3.11" / "site-packages" / "ray-2.60.0.dist-info").mkdir(parents=True)
    assert installed_ray_version(tmp_path) == "2.60.0"
    check = RayVersionCheck(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert check.check("rayproject/ray:2.46.0") is not None
        assert check.check("rayproject/ray:2.46.0-py311") is None  # same Ray version: said already
        assert check.check("rayproject/ray:2.60.0") is None
        assert check.check("python:3.11") is None
    assert len([r for r in caplog.records if "asks for Ray 2.46.0" in r.getMessage()]) == 1
