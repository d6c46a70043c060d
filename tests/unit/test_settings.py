"""Settings resolution: CLI > environment > ini > default, and one clear error per bad value."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pytest_kuberay.errors import SettingsError
from pytest_kuberay.settings import OPTIONS, Settings, resolve_settings
from pytest_kuberay.versions import parse_version


class FakeConfig:
    """Just enough of pytest.Config: options keyed by flag, ini keys by name; unset means None."""

    def __init__(self, cli: dict[str, Any] | None = None, ini: dict[str, str] | None = None) -> None:
        self.cli = cli or {}
        self.ini = ini or {}

    def getoption(self, name: str) -> Any:
        return self.cli.get(name)

    def getini(self, name: str) -> Any:
        return self.ini.get(name)


def resolve(cli: dict[str, Any] | None = None, env: dict[str, str] | None = None,
            ini: dict[str, str] | None = None) -> Settings:
    return resolve_settings(FakeConfig(cli, ini), environ=env or {})


def test_option_names_line_up() -> None:
    option = next(o for o in OPTIONS if o.field == "versions")
    assert option.flag == "--kuberay-version"
    assert option.ini == "kuberay_version"
    assert option.env == "PYTEST_KUBERAY_VERSION"
    assert {o.field for o in OPTIONS} == {f.name for f in dataclasses.fields(Settings)}


def test_defaults() -> None:
    settings = resolve()
    assert settings.versions == (parse_version("v1.5.1"),)
    assert settings.provider == "auto"
    assert settings.keep_cluster is False
    assert settings.ray_image is None
    assert settings.gateway_class is None
    assert settings.artifacts_dir == Path("kuberay-artifacts").resolve()
    assert settings.timeout_scale == 1.0
    assert settings.ignore_known_bugs is False
    assert settings.source is None
    assert settings.kubeconfig is None
    assert settings.kube_context is None


@pytest.mark.parametrize(
    ("flag", "field", "cli", "env", "ini", "want"),
    [
        ("--kuberay-provider", "provider", "kind", "local", "existing", ("kind", "local", "existing")),
        ("--kuberay-version", "versions", "v1.6.0", "v1.5.0", "v1.7.0",
         tuple((parse_version(v),) for v in ("v1.6.0", "v1.5.0", "v1.7.0"))),
        ("--kuberay-timeout-scale", "timeout_scale", "3", "2", "0.5", (3.0, 2.0, 0.5)),
        ("--kuberay-kube-context", "kube_context", "a", "b", "c", ("a", "b", "c")),
        ("--kuberay-ray-image", "ray_image", "r/ray:1", "r/ray:2", "r/ray:3", ("r/ray:1", "r/ray:2", "r/ray:3")),
    ],
)
def test_precedence_cli_env_ini_default(
    flag: str, field: str, cli: str, env: str, ini: str, want: tuple[Any, Any, Any]
) -> None:
    option = next(o for o in OPTIONS if o.flag == flag)
    everything = resolve({flag: cli}, {option.env: env}, {option.ini: ini})
    no_cli = resolve({}, {option.env: env}, {option.ini: ini})
    ini_only = resolve({}, {}, {option.ini: ini})
    assert (getattr(everything, field), getattr(no_cli, field), getattr(ini_only, field)) == want


@pytest.mark.parametrize("flag", ["--kuberay-keep-cluster", "--kuberay-ignore-known-bugs"])
def test_boolean_flags(flag: str) -> None:
    option = next(o for o in OPTIONS if o.flag == flag)
    assert option.is_flag
    assert getattr(resolve({flag: True}, {option.env: "false"}), option.field) is True
    assert getattr(resolve({}, {option.env: "yes"}, {option.ini: "false"}), option.field) is True
    assert getattr(resolve({}, {option.env: "0"}, {option.ini: "true"}), option.field) is False
    assert getattr(resolve({}, {}, {option.ini: "on"}), option.field) is True
    assert getattr(resolve({}, {}, {}), option.field) is False


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_KUBERAY_PROVIDER", "local")
    assert resolve_settings(FakeConfig()).provider == "local"


def test_existing_paths(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\n")
    settings = resolve({"--kuberay-source": str(tmp_path), "--kuberay-kubeconfig": str(kubeconfig),
                        "--kuberay-artifacts": str(tmp_path / "out")})
    assert settings.source == tmp_path.resolve()
    assert settings.kubeconfig == kubeconfig.resolve()
    assert settings.artifacts_dir == (tmp_path / "out").resolve()


BAD_VALUES = [
    ("--kuberay-version", "v0.1.0", "Examples: --kuberay-version=v1.5.0"),
    ("--kuberay-version", "1.5.0-rc1", "Examples: --kuberay-version=v1.5.0"),
    ("--kuberay-provider", "minikube", "Example: --kuberay-provider=local"),
    ("--kuberay-keep-cluster", "maybe", "Example: --kuberay-keep-cluster=true"),
    ("--kuberay-ignore-known-bugs", "2", "Example: --kuberay-ignore-known-bugs=true"),
    ("--kuberay-ray-image", "rayproject/ray", "Example: --kuberay-ray-image=rayproject/ray:2.46.0"),
    ("--kuberay-ray-image", "Ray:latest", "Example: --kuberay-ray-image=rayproject/ray:2.46.0"),
    ("--kuberay-gateway-class", "Istio", "Examples: --kuberay-gateway-class=istio"),
    ("--kuberay-gateway-class", "a" * 64, "Examples: --kuberay-gateway-class=istio"),
    ("--kuberay-gateway-class", "gw-", "Examples: --kuberay-gateway-class=istio"),
    ("--kuberay-timeout-scale", "0", "Example: --kuberay-timeout-scale=2"),
    ("--kuberay-timeout-scale", "-1", "Example: --kuberay-timeout-scale=2"),
    ("--kuberay-timeout-scale", "101", "Example: --kuberay-timeout-scale=2"),
    ("--kuberay-timeout-scale", "fast", "Example: --kuberay-timeout-scale=2"),
    ("--kuberay-timeout-scale", "nan", "Example: --kuberay-timeout-scale=2"),
    ("--kuberay-source", "/nonexistent/kuberay", "Example: --kuberay-source=~/src/kuberay"),
    ("--kuberay-kubeconfig", "/nonexistent/config", "Example: --kuberay-kubeconfig=~/.kube/config"),
]


@pytest.mark.parametrize("where", ["cli", "env", "ini"])
@pytest.mark.parametrize(("flag", "value", "example"), BAD_VALUES)
def test_bad_values_name_the_option_and_show_an_example(flag: str, value: str, example: str, where: str) -> None:
    option = next(o for o in OPTIONS if o.flag == flag)
    sources: dict[str, dict[str, Any]] = {"cli": {}, "env": {}, "ini": {}}
    sources[where][{"cli": option.flag, "env": option.env, "ini": option.ini}[where]] = value
    if where == "cli" and option.is_flag:
        # a store_true flag can only be True on the command line; give the bad text through env instead
        sources = {"cli": {}, "env": {option.env: value}, "ini": {}}
    with pytest.raises(SettingsError) as excinfo:
        resolve(sources["cli"], sources["env"], sources["ini"])
    message = str(excinfo.value)
    assert message.startswith(flag + ":")
    assert repr(value) in message
    assert example in message


def test_source_must_be_a_directory_and_kubeconfig_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(SettingsError, match="is not a directory"):
        resolve({"--kuberay-source": str(a_file)})
    with pytest.raises(SettingsError, match="is not a file"):
        resolve({"--kuberay-kubeconfig": str(tmp_path)})


def test_settings_are_frozen() -> None:
    settings = resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.provider = "kind"  # type: ignore[misc]


def test_ray_image_and_timeout_helpers() -> None:
    v150, v170 = parse_version("v1.5.0"), parse_version("v1.7.0")
    default = resolve({"--kuberay-timeout-scale": "2.5"})
    assert default.ray_image_for(v150) == "rayproject/ray:2.46.0"
    assert default.ray_image_for(v170) == "rayproject/ray:2.55.0"
    assert default.timeout(10) == 25.0
    pinned = resolve({"--kuberay-ray-image": "example.com/ray:custom"})
    assert pinned.ray_image_for(v150) == "example.com/ray:custom"
