import numpy as np
import pytest

import tapegrad
from tapegrad import reference


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
