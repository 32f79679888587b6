"""The version is written once, in tapegrad/__init__.py; the build reads it from there
(pyproject.toml's [tool.scikit-build.metadata.version])."""

import re
from importlib import metadata
from pathlib import Path

import pytest

import tapegrad


def test_the_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", tapegrad.__version__)


def test_the_installed_distribution_has_the_package_version():
    try:
        installed = metadata.version("tapegrad")
    except metadata.PackageNotFoundError:
        pytest.skip("tapegrad is not installed (the tests run from the source tree)")
    assert installed == tapegrad.__version__


def test_pyproject_takes_the_version_from_the_package():
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("no pyproject.toml beside the tests")
    text = pyproject.read_text()
    assert re.search(r'^dynamic = \["version"\]', text, re.MULTILINE)
    assert not re.search(r"^version\s*=", text, re.MULTILINE), "a second version in pyproject.toml"
    assert 'input = "python/tapegrad/__init__.py"' in text
