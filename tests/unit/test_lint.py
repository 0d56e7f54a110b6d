"""ruff (installed with the test extras) reports nothing on the tree: lint is part of `make test`."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ruff_is_clean():
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    if not os.path.exists(ruff):
        ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is missing: it is in the test extras (`pip install -e '.[test]'`, which `make test` runs)")
    proc = subprocess.run([ruff, "check", "--no-cache", ROOT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
