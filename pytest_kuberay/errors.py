"""Errors whose message is meant for a person, not a traceback.

Every layer raises a subclass of :class:`KubeRayTestError` when the cause is
something the user can fix (bad option, missing tool, unreachable cluster).
The plugin turns them into one readable line instead of a stack trace.
"""

from __future__ import annotations

__all__ = ["KubeRayTestError", "ManifestError", "ProviderError", "ServeConfigError", "SettingsError", "ToolchainError"]


class KubeRayTestError(Exception):
    """Base for errors with a message that already says what to do."""


class SettingsError(KubeRayTestError):
    """An option, ini key or environment variable has a value we cannot use."""


class ToolchainError(KubeRayTestError):
    """A binary we need cannot be built or found (Go missing, version unknown, build failed)."""


class ProviderError(KubeRayTestError):
    """A cluster cannot be created or reached."""


class ServeConfigError(KubeRayTestError):
    """A Serve config does not validate against Ray's ServeDeploySchema."""


class ManifestError(KubeRayTestError):
    """A RayService manifest cannot be tested as given (no incremental strategy, invalid Serve config, ...)."""
