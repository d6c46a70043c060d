"""The public API is enough for the shipped suites, it is typed, and the wheel carries what the plugin needs."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest
import tomllib

import pytest_kuberay
from pytest_kuberay import protocols

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return modules


def test_the_shipped_suites_import_only_the_public_api() -> None:
    private = {f"{path.relative_to(REPO)}: {module}"
               for path in (REPO / "suites").rglob("*.py")
               for module in _imports(path) if module.startswith("pytest_kuberay.")}
    assert not private, "the suites must use only what pytest_kuberay exports:\n" + "\n".join(sorted(private))


def test_everything_in_all_is_importable_and_nothing_else_is_promised() -> None:
    assert len(set(pytest_kuberay.__all__)) == len(pytest_kuberay.__all__)
    missing = [name for name in pytest_kuberay.__all__ if not hasattr(pytest_kuberay, name)]
    assert not missing


@pytest.mark.parametrize("name", ["KubeRayCluster", "KubeRayOperator", "RayServiceFactory", "Upgrade"])
def test_the_fixture_protocols_have_no_any(name: str) -> None:
    cls = getattr(protocols, name)
    for member_name, member in inspect.getmembers(cls):
        if member_name.startswith("_") and member_name != "__call__":
            continue
        target = member.fget if isinstance(member, property) else member
        if not callable(target):
            continue
        hints = typing.get_type_hints(target, vars(protocols) | vars(pytest_kuberay))
        assert "Any" not in repr(hints), f"{name}.{member_name} has Any in {hints}"


def test_the_wheel_lists_every_package() -> None:
    """setuptools cannot find mapped packages, so pyproject lists them: a new subpackage must be added there."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.relative_to(REPO).parent.parts) for p in (REPO / "pytest_kuberay").rglob("__init__.py")}
    on_disk |= {"pytest_kuberay.suites." + ".".join(p.relative_to(REPO / "suites").parent.parts)
                for p in (REPO / "suites").rglob("__init__.py") if p.parent != REPO / "suites"}
    on_disk.add("pytest_kuberay.suites")
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    for package, directory in config["package-dir"].items():
        assert (REPO / directory).is_dir(), f"{package} maps to a missing directory {directory}"
