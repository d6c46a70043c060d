"""The marks of a test that runs the local provider: it skips, saying what is missing, where it cannot run."""

from __future__ import annotations

import os
import shutil

import pytest

from pytest_kuberay.providers.local.host_tools import LOCAL_PROVIDER_COMMANDS

_absent = [c for c in (*LOCAL_PROVIDER_COMMANDS, "go") if shutil.which(c) is None]

#: ``pytestmark = NEEDS_LOCAL_PROVIDER`` in a test module that starts a local cluster.
NEEDS_LOCAL_PROVIDER = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the local provider needs root (namespaces, mounts, cgroups)"),
    pytest.mark.skipif(bool(_absent), reason=f"the local provider needs {', '.join(_absent)} (make setup)"),
]
