"""The code stays lint-clean (ruff, configured in pyproject.toml): errors, imports, bugbear, blind excepts."""

import subprocess
import sys

from conftest import ROOT


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "qa", "tests", "benchmarks", "app.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
