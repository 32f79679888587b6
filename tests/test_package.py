"""The package's own structure: no import cycle, no import-order effects, no private imports.

The modules form layers (drawn in tapegrad/__init__.py): a module imports only
from layers below it, so any module can be imported first, and everything that
wires the layers together (the catalogue's entries, the Tensor methods, numpy's
dispatch) happens once, in the package's __init__, in one order.
"""

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tapegrad

PACKAGE = Path(tapegrad.__file__).parent


def module_name(path: Path) -> str:
    parts = ["tapegrad", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = sorted(m for m in SOURCES if m != "tapegrad")
PACKAGES = {m for m, p in SOURCES.items() if p.name == "__init__.py"}


def is_module(name: str) -> bool:
    return name in SOURCES or name == "tapegrad._core"


def imports(name: str) -> list[tuple[str, ast.ImportFrom | ast.Import, str | None]]:
    """(imported module, node, imported name) for every import of the package's modules in
    ``name``'s source, at module level or inside functions: ``from .x import y`` gives
    ``tapegrad.x`` (or ``tapegrad.x.y`` when that is a module) and ``y``."""
    tree = ast.parse(SOURCES[name].read_text())
    here = name if name in PACKAGES else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node, None) for a in node.names if a.name.split(".")[0] == "tapegrad"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != "tapegrad":
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((target if is_module(target) else base, node, alias.name))
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: {target for target, _, _ in imports(name) if target != name}
            for name in SOURCES}


def test_the_import_graph_has_no_cycle():
    """Module-level and function-level imports alike: a function that imports to dodge a
    cycle still has one."""
    graph = import_graph()
    state: dict[str, str] = {}
    path: list[str] = []
    cycles = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_is_imported_across_modules():
    """Helpers that several modules share are public names of an internal module
    (tapegrad._args); ``from .x import _y`` and ``x._y`` are refused (``_core`` excepted)."""
    offences = []
    for name in SOURCES:
        bound = {}
        for target, node, imported in imports(name):
            if imported is None:
                continue
            alias = next(a for a in node.names if a.name == imported)
            if is_module(target) and target.endswith("." + imported):
                bound[alias.asname or imported] = target  # a module: check its attributes below
            elif imported.startswith("_"):
                offences.append(f"{name}:{node.lineno}: from {target} import {imported}")
        tree = ast.parse(SOURCES[name].read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and bound[node.value.id] != "tapegrad._core"):
                offences.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offences, "private names used across modules:\n" + "\n".join(offences)


# Run in a fresh interpreter: the package object exists but its __init__ has not run,
# the modules named are imported in that order, then the package's __init__ runs, and
# what the wiring produced is printed.
DRIVER = """
import importlib, importlib.util, json, sys
package_dir, order = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location(
    "tapegrad", package_dir + "/__init__.py", submodule_search_locations=[package_dir])
package = importlib.util.module_from_spec(spec)
sys.modules["tapegrad"] = package
for name in order:
    importlib.import_module(name)
spec.loader.exec_module(package)
import numpy as np
tg = package
codes = tg.catalogue.ufunc_codes()
print(json.dumps({
    "ops": list(tg.catalogue.OPS),
    "implementations": sorted((f, getattr(fn, "__module__", "")) for f, fn in
                              tg.catalogue.IMPLEMENTATIONS.items()),
    "all": tg.__all__,
    "tensor": sorted((k, getattr(v, "__qualname__", type(v).__name__))
                     for k, v in vars(tg.Tensor).items()),
    "ufunc_codes": sorted((u.__name__, c) for u, c in codes.items()),
    "scipy": "scipy" in sys.modules,
    "works": float((np.exp(tg.Tensor(np.ones(2))).sum() + tg.Tensor([1.0]).T.sum()).data),
}))
"""


def wiring(order: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", DRIVER, str(PACKAGE), json.dumps(order)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"importing {order[0]} first failed:\n{out.stderr}"
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def usual():
    return wiring(["tapegrad._core"])


@pytest.mark.parametrize("first", MODULES)
def test_any_module_can_be_imported_first(first, usual):
    """Each module imported first (and the others after it, in two orders) before the
    package's __init__ gives the same catalogue, Tensor methods and numpy dispatch, in the
    same order: nothing is registered as a side effect of which module came first."""
    rest = [m for m in MODULES if m != first]
    for order in ([first, *rest], [first, *reversed(rest)]):
        got = wiring(order)
        assert not got["scipy"], "import tapegrad must not import scipy"
        for key in usual:
            assert got[key] == usual[key], f"{key} differs when {order[0]} is imported first"


def test_every_declared_op_is_registered():
    """A module of ops that tapegrad/__init__.py forgot to pass to catalogue.register would
    declare functions that nothing dispatches to."""
    tapegrad.catalogue.load_all()
    missing = []
    for name, module in sorted(sys.modules.items()):
        if name != "tapegrad" and not name.startswith("tapegrad."):
            continue
        for fn in vars(module).values():
            entry = getattr(fn, "catalogue_entry", None) if inspect.isfunction(fn) else None
            if entry is not None and fn.__module__ == name and (
                    tapegrad.catalogue.IMPLEMENTATIONS.get(entry.function) is not fn):
                missing.append(f"{name}.{fn.__name__}")
    assert not missing, ("declared but not registered (add the module to catalogue.register "
                         f"in tapegrad/__init__.py): {missing}")
