"""The API reference lists every public name (docs/api/*.rst, the declared lists)."""

import importlib
import re
from pathlib import Path

import pytest

import tapegrad

API = Path(__file__).parents[1] / "docs" / "api"
# Submodules users import, whose __all__ the reference must cover too.
SUBMODULES = ["tapegrad.linalg", "tapegrad.scipy.special", "tapegrad.scipy.linalg",
              "tapegrad.scipy.signal", "tapegrad.scipy.stats"]


def documented() -> tuple[set[str], set[str]]:
    """The dotted names the reference's autosummary lists declare, and its modules."""
    names, modules = set(), set()
    for page in sorted(API.glob("*.rst")):
        module, in_list = "", False
        for line in page.read_text().splitlines():
            directive = re.match(r"\.\. (currentmodule|automodule|autosummary)::\s*(\S*)", line)
            if directive:
                kind, target = directive.groups()
                in_list = kind == "autosummary"
                if kind == "currentmodule":
                    module = target
                elif kind == "automodule":
                    modules.add(target)
            elif in_list and re.match(r"   [A-Za-z_]\w*$", line):
                names.add(f"{module}.{line.strip()}")
            elif line and not line.startswith(" "):
                in_list = False
    return names, modules


def test_the_parser_reads_the_lists():
    names, modules = documented()
    assert {"tapegrad.Tensor", "tapegrad.exp", "tapegrad.linalg.solve",
            "tapegrad.viz.to_dot", "tapegrad.scipy.stats.norm"} <= names
    assert "tapegrad.linalg" in modules
    assert not any(name.endswith(":") for name in names)  # no option line read as a name


@pytest.mark.skipif(not API.exists(), reason="no source checkout")
def test_every_public_name_is_in_the_api_reference():
    names, modules = documented()
    missing = []
    for name in tapegrad.__all__:
        value = getattr(tapegrad, name)
        dotted = f"tapegrad.{name}"
        if not (dotted in names or (type(value).__name__ == "module" and dotted in modules)):
            missing.append(dotted)
    for module_name in SUBMODULES:
        module = importlib.import_module(module_name)
        missing += [f"{module_name}.{n}" for n in module.__all__
                    if f"{module_name}.{n}" not in names]
    assert not missing, f"add these to an autosummary list in docs/api/*.rst: {missing}"


@pytest.mark.skipif(not API.exists(), reason="no source checkout")
def test_every_listed_name_exists():
    names, _ = documented()
    stale = []
    for dotted in sorted(names):
        module_name, _, attribute = dotted.rpartition(".")
        if not hasattr(importlib.import_module(module_name), attribute):
            stale.append(dotted)
    assert not stale, f"docs/api/*.rst lists names that do not exist: {stale}"
