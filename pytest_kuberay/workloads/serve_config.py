"""Serve configs: validated with Ray's own schema before they reach any cluster.

A config KubeRay would reject (or Serve would answer 400 to) otherwise shows up
minutes later as a stuck upgrade; validating up front turns it into one clear
error naming the field.
"""

from __future__ import annotations

from typing import Any

from pytest_kuberay.errors import ServeConfigError

__all__ = ["app_configs", "validate_serve_config"]


def validate_serve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` with ``ray.serve.schema.ServeDeploySchema`` and return it unchanged."""
    import pydantic
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ServeConfigError(
            f"invalid Serve config ({exc.error_count()} problem(s)): {problems}. "
            "See https://docs.ray.io/en/latest/serve/production-guide/config.html"
        ) from None
    return config


def app_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-application configs of a Serve config, by app name (what ``deployed_app_config`` echoes)."""
    return {app["name"]: app for app in config.get("applications", [])}
