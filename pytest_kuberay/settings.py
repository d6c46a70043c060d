"""One immutable Settings object, resolved once per session.

Every option exists three ways, in this order of precedence: the command-line
flag, an environment variable, an ini key, then the default. All values are
parsed and checked here so a bad one stops the run before anything starts,
with one message that shows valid examples.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from pytest_kuberay.errors import SettingsError
from pytest_kuberay.versions import DEFAULT_KUBERAY_VERSION, KubeRayVersion, parse_version_list

__all__ = ["OPTIONS", "PROVIDERS", "Option", "Settings", "default_settings", "resolve_settings"]

PROVIDERS = ("auto", "kind", "local", "existing")

DEFAULT_OPERATOR_IMAGE = "quay.io/kuberay/operator:{version}"
_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Settings:
    """What this session runs against. Built by :func:`resolve_settings`, never mutated."""

    versions: tuple[KubeRayVersion, ...]
    provider: str
    keep_cluster: bool
    ray_image: str | None  # None: the image upstream pairs with each version
    gateway_class: str | None  # None: the provider's default (istio on kind, traefik on local)
    artifacts_dir: Path
    timeout_scale: float
    ignore_known_bugs: bool
    source: Path | None
    kubeconfig: Path | None
    kube_context: str | None
    operator_image: str = "quay.io/kuberay/operator:{version}"
    rayservice: Path | None = None
    upgrade_to: Path | None = None
    apps: tuple[Path, ...] = ()
    traffic_paths: tuple[str, ...] = ("/",)

    def ray_image_for(self, version: KubeRayVersion) -> str:
        return self.ray_image or version.default_ray_image

    def operator_image_for(self, version: KubeRayVersion) -> str:
        """The operator image to install on an existing cluster (``+`` is not allowed in a tag)."""
        return self.operator_image.replace("{version}", version.label.replace("+", "-"))

    def timeout(self, seconds: float) -> float:
        """Scale a nominal timeout for slow machines (--kuberay-timeout-scale)."""
        return seconds * self.timeout_scale


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}: expected true or false, got {text!r}. Example: {name.split()[0]}=true")


def _parse_provider(text: str) -> str:
    value = text.strip().lower()
    if value not in PROVIDERS:
        raise SettingsError(
            f"--kuberay-provider: unknown provider {text!r}; choose one of {', '.join(PROVIDERS)}. "
            "Example: --kuberay-provider=local"
        )
    return value


def _parse_image(text: str) -> str:
    value = text.strip()
    if not _IMAGE_RE.match(value):
        raise SettingsError(
            f"--kuberay-ray-image: {text!r} is not an image reference with a tag. "
            "Example: --kuberay-ray-image=rayproject/ray:2.46.0"
        )
    return value


def _parse_dir_list(text: str) -> tuple[Path, ...]:
    paths = tuple(Path(p.strip()).expanduser().resolve() for p in text.split(",") if p.strip())
    for path in paths:
        if not path.is_dir():
            raise SettingsError(f"--kuberay-apps: {path} is not a directory (one directory per Serve app, "
                                "e.g. --kuberay-apps=apps/fruit,apps/greeter)")
    return paths


def _parse_paths(text: str) -> tuple[str, ...]:
    paths = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in paths if not p.startswith("/")]
    if bad or not paths:
        raise SettingsError(f"--kuberay-traffic-path: routes must start with '/', got {text!r}. "
                            "Example: --kuberay-traffic-path=/fruit,/greet")
    return paths


def _parse_operator_image(text: str) -> str:
    value = text.strip()
    if not _IMAGE_RE.match(value.replace("{version}", "v1.5.0")):
        raise SettingsError(
            f"--kuberay-operator-image: {text!r} is not an image reference with a tag. "
            "Example: --kuberay-operator-image=registry.corp/kuberay/operator:{version}"
        )
    return value


def _parse_gateway_class(text: str) -> str:
    value = text.strip()
    if not _DNS_LABEL_RE.match(value) or len(value) > 63:
        raise SettingsError(
            f"--kuberay-gateway-class: {text!r} is not a valid GatewayClass name. "
            "Examples: --kuberay-gateway-class=istio, --kuberay-gateway-class=traefik"
        )
    return value


def _parse_timeout_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 100:
        raise SettingsError(
            f"--kuberay-timeout-scale: expected a number between 0 and 100, got {text!r}. "
            "Example: --kuberay-timeout-scale=2 doubles every timeout"
        )
    return value


def _parse_existing_dir(name: str) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        path = Path(text).expanduser().resolve()
        if not path.is_dir():
            raise SettingsError(f"{name}: {text!r} is not a directory. Example: {name}=~/src/kuberay")
        return path

    return parse


def _parse_existing_file(name: str) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise SettingsError(f"{name}: {text!r} is not a file. Example: {name}=~/.kube/config")
        return path

    return parse


@dataclass(frozen=True)
class Option:
    """One setting, declared once and exposed as flag, ini key and environment variable."""

    field: str
    flag: str
    help: str
    default: str | None
    parse: Callable[[str], Any]
    is_flag: bool = False
    metavar: str | None = None

    @property
    def ini(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return "PYTEST_" + self.ini.upper()


OPTIONS: tuple[Option, ...] = (
    Option("versions", "--kuberay-version", "KubeRay versions to test, comma separated "
           f"(default {DEFAULT_KUBERAY_VERSION})", DEFAULT_KUBERAY_VERSION, parse_version_list,
           metavar="V[,V...]"),
    Option("provider", "--kuberay-provider", "where the cluster comes from: auto (kind if a Docker engine "
           "answers, else local), kind, local, existing", "auto", _parse_provider, metavar="NAME"),
    Option("keep_cluster", "--kuberay-keep-cluster", "keep the cluster after the session for debugging",
           "false", lambda t: _parse_bool("--kuberay-keep-cluster", t), is_flag=True),
    Option("ray_image", "--kuberay-ray-image", "Ray image for RayClusters (default: the one upstream pairs "
           "with each KubeRay version)", None, _parse_image, metavar="IMAGE"),
    Option("gateway_class", "--kuberay-gateway-class", "GatewayClass for the HTTPRoute (default: istio on "
           "kind, traefik on local)", None, _parse_gateway_class, metavar="NAME"),
    Option("artifacts_dir", "--kuberay-artifacts", "directory for timelines, plots, logs and YAML",
           "kuberay-artifacts", lambda t: Path(t).expanduser().resolve(), metavar="DIR"),
    Option("timeout_scale", "--kuberay-timeout-scale", "multiply every timeout (slow machines, CI)",
           "1", _parse_timeout_scale, metavar="FACTOR"),
    Option("ignore_known_bugs", "--kuberay-ignore-known-bugs", "run tests marked kuberay_bug as plain tests",
           "false", lambda t: _parse_bool("--kuberay-ignore-known-bugs", t), is_flag=True),
    Option("source", "--kuberay-source", "build the operator from this KubeRay checkout instead of a release",
           None, _parse_existing_dir("--kuberay-source"), metavar="PATH"),
    Option("kubeconfig", "--kuberay-kubeconfig", "kubeconfig for --kuberay-provider=existing", None,
           _parse_existing_file("--kuberay-kubeconfig"), metavar="FILE"),
    Option("kube_context", "--kuberay-kube-context", "kubeconfig context for --kuberay-provider=existing",
           None, str, metavar="NAME"),
    Option("rayservice", "--kuberay-rayservice", "your RayService manifest: the shipped suites judge its "
           "upgrade to --kuberay-upgrade-to instead of the echo app", None,
           _parse_existing_file("--kuberay-rayservice"), metavar="FILE"),
    Option("upgrade_to", "--kuberay-upgrade-to", "the manifest your RayService upgrades to (with "
           "--kuberay-rayservice)", None, _parse_existing_file("--kuberay-upgrade-to"), metavar="FILE"),
    Option("apps", "--kuberay-apps", "your Serve app directories, comma separated; each is shipped as a "
           "ConfigMap and mounted at /home/ray/apps/<dir name>", "", _parse_dir_list, metavar="DIR[,DIR]"),
    Option("traffic_paths", "--kuberay-traffic-path", "routes of your RayService to send requests to during "
           "the upgrade, comma separated (default /)", "/", _parse_paths, metavar="/PATH[,/PATH]"),
    Option("operator_image", "--kuberay-operator-image", "operator image when pytest-kuberay installs KubeRay on "
           "an existing cluster; {version} is replaced by the version (default quay.io/kuberay/operator:{version}; "
           "e.g. a mirror: registry.corp/kuberay/operator:{version})", DEFAULT_OPERATOR_IMAGE,
           _parse_operator_image, metavar="IMAGE"),
)


class _ConfigLike(Protocol):
    def getoption(self, name: str) -> Any: ...
    def getini(self, name: str) -> Any: ...


def _raw_value(config: _ConfigLike, option: Option, environ: dict[str, str]) -> tuple[str | None, str]:
    """The option's text and where it came from, in precedence order."""
    cli = config.getoption(option.flag)
    if cli is not None and cli is not False:
        return ("true" if cli is True else str(cli)), "command line"
    if option.env in environ:
        return environ[option.env], f"environment variable {option.env}"
    ini = config.getini(option.ini)
    if ini not in (None, "", []):
        return str(ini), f"ini key {option.ini}"
    return option.default, "default"


def resolve_settings(config: _ConfigLike, environ: dict[str, str] | None = None) -> Settings:
    """Read every option once, in precedence order, and return the frozen result."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, source = _raw_value(config, option, env)
        try:
            values[option.field] = None if raw is None else option.parse(raw)
        except SettingsError as exc:
            if source == "command line":
                raise
            raise SettingsError(f"{exc} [value from {source}]") from None
    if (values.get("rayservice") is None) != (values.get("upgrade_to") is None):
        raise SettingsError("--kuberay-rayservice and --kuberay-upgrade-to go together: the manifest your RayService "
                            "starts from and the one it upgrades to. Example: --kuberay-rayservice=mine.yaml "
                            "--kuberay-upgrade-to=mine-v2.yaml")
    return Settings(**values)


def default_settings(**overrides: Any) -> Settings:
    """Settings as if no option were given, with ``overrides`` (field names) applied: for library use and tests."""
    values: dict[str, Any] = {o.field: None if o.default is None else o.parse(o.default) for o in OPTIONS}
    values.update(overrides)
    return Settings(**values)


#: Where the plugin keeps the session's resolved settings (``config.stash``).
SETTINGS_KEY = pytest.StashKey[Settings]()


def settings_of(config: pytest.Config) -> Settings:
    """The settings the plugin resolved for this session."""
    return config.stash[SETTINGS_KEY]
