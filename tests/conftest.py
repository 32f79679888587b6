import os

import numpy as np
import pytest

import tapegrad
from tapegrad import reference

# Under tools/sanitize.sh leaks are checked in this process only: the children
# some tests start (fresh interpreters, graphviz's dot) inherit the preloaded
# sanitizers, and their own exit-time allocations are not ours to judge.
if "libasan" in os.environ.get("LD_PRELOAD", ""):
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "").replace(
        "detect_leaks=1", "detect_leaks=0")


@pytest.fixture(params=["tapegrad", "reference"])
def impl(request):
    """Both implementations of the seed surface, each with a fresh history."""
    module = tapegrad if request.param == "tapegrad" else reference
    module.clear_history()
    yield module
    module.clear_history()


@pytest.fixture(autouse=True)
def _fresh_history():
    tapegrad.clear_history()
    yield
    tapegrad.clear_history()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
