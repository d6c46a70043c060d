"""The README's "Test your own RayService" example, run as written: two apps of a user's own, on their routes.

Every code block of that section that starts with ``# file: <path>`` is written to a fresh
directory, and pytest runs the example test there against a real local cluster. The user's
RayService has two apps on non-root routes; the test upgrades it and sends traffic to both.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.local_provider import NEEDS_LOCAL_PROVIDER
from tests.support.pytest_output import explain

pytestmark = NEEDS_LOCAL_PROVIDER

README = Path(__file__).resolve().parents[2] / "README.md"


def example_files() -> dict[str, str]:
    """``{path: content}`` of the section's code blocks that name their file."""
    text = README.read_text()
    section = text.split("## Test your own RayService", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S):
        first, _, rest = block.partition("\n")
        match = re.match(r"# file: (\S+)$", first)
        if match:
            files[match.group(1)] = rest
    return files


def test_the_readme_names_its_example_files() -> None:
    assert set(example_files()) == {"apps/fruit/fruit.py", "apps/greeter/greeter.py", "rayservice.yaml",
                                    "test_shop_upgrade.py"}


def test_the_readme_example_passes_as_written(tmp_path: Path) -> None:
    for name, content in example_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    argv = [sys.executable, "-m", "pytest", "test_shop_upgrade.py", "--kuberay-version=v1.5.1",
            "--kuberay-provider=local", "-p", "no:cacheprovider", f"--kuberay-artifacts={tmp_path / 'a'}"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=1800, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "1 passed" in out, explain(out)
