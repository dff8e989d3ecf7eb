"""Every experiment script answers `--help` without importing Keras."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.parametrize("script", ["main", "fully_connected"])
def test_help(script):
    result = subprocess.run(
        [sys.executable, "-m", f"examples.{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--backend" in result.stdout
    assert "--smoke" in result.stdout
