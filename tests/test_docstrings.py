"""Every example in a public docstring runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import tapegrad

# Subpackages' modules too (tapegrad.scipy.special, ...).
MODULES = sorted(m.name for m in pkgutil.walk_packages(tapegrad.__path__, "tapegrad.")
                 if not m.name.endswith("_core"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name.startswith(("tapegrad.scipy", "tapegrad._sylvester")):
        pytest.importorskip("scipy", reason="tapegrad.scipy's examples call scipy")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0 or name == "tapegrad.numpy_interop"  # it has no public function
