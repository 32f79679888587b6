"""The examples run and do what their docstrings say."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_mlp_digits_reaches_95_percent():
    pytest.importorskip("sklearn")
    out = subprocess.run([sys.executable, str(EXAMPLES / "mlp_digits.py"), "--epochs", "8"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.count("epoch") == 8
    accuracy = float(out.strip().splitlines()[-1].split()[-1])
    assert accuracy >= 0.95, out
