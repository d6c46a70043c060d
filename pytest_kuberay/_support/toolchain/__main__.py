"""``python -m pytest_kuberay._support.toolchain``: the same as ``pytest-kuberay toolchain``."""

import sys

from pytest_kuberay._support.toolchain.cli import main

sys.exit(main())
