"""The op catalogue: every op's public face, declared once (Note [Catalogue] in csrc/catalogue.hpp).

A native op declares its function name, the numpy or scipy callables that
dispatch to it, its Tensor method, its arity and a one-line doc on its C++
struct; ``_core.CATALOGUE`` exports them. An op written in Python as a
composition of others declares the same with :func:`composite`, and the Python
wrapper of a native array op (which normalises parameters such as axes) is
tied to its entry with :func:`wraps_op`. Everything else is built from these
entries: the functions of ``tapegrad`` and its submodules, numpy's dispatch
maps, the Tensor methods, ``__all__`` and the docstrings.
tests/test_catalogue.py fails when an entry is unreachable.

Example:
    >>> import tapegrad as tg
    >>> from tapegrad import catalogue
    >>> op = catalogue.OPS["exp"]
    >>> op.kind, op.numpy, op.method
    ('elementwise', ('numpy.exp',), 'exp')
    >>> catalogue.OPS["mean"].kind
    'composite'
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, TypeVar

import numpy as np

from . import _core

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Op:
    """One catalogue entry (the fields of Note [Catalogue])."""

    name: str  # the op's name on the tape; a composite's function name
    function: str | None  # tapegrad's function, dotted for a submodule; None: operator only
    kind: str  # "elementwise" or "array" (native), or "composite" (Python)
    numpy: tuple[str, ...]  # the numpy or scipy callables that dispatch to it
    method: str | None  # the Tensor method
    arity: int  # Tensor inputs; -1: any number
    doc: str  # one line: the start of the docstring
    code: int | None  # the native op code

    @property
    def module(self) -> str:
        """The module that holds the function: ``tapegrad`` or a submodule of it."""
        return ".".join(["tapegrad", *(self.function or "").split(".")[:-1]])

    @property
    def short_name(self) -> str:
        """The function's name within its module."""
        return (self.function or "").rsplit(".", 1)[-1]


def _paths(numpy: str | None) -> tuple[str, ...]:
    return tuple(numpy.split()) if numpy else ()


NATIVE: dict[str, Op] = {
    entry["name"]: Op(
        name=entry["name"], function=entry["function"], kind=entry["kind"],
        numpy=_paths(entry["numpy"]), method=entry["method"], arity=entry["arity"],
        doc=entry["doc"], code=entry["code"],
    )
    for entry in _core.CATALOGUE
}
"""Native ops by their name on the tape."""

OPS: dict[str, Op] = {op.function: op for op in NATIVE.values() if op.function}
"""Every op with a function, by its function name (dotted for a submodule)."""

IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    op.function: getattr(_core, op.function) for op in OPS.values() if op.kind == "elementwise"
}
"""The callable of each function name: native functions, wrappers and composites."""


def _function_name(fn: Callable[..., Any]) -> str:
    """``linalg.inv`` for tapegrad/linalg.py's inv; ``mean`` for array_ops.py's mean."""
    module = fn.__module__
    if module != "tapegrad" and not module.startswith("tapegrad."):
        raise ValueError(f"catalogue: {fn.__qualname__} is not defined in tapegrad")
    path = module.split(".")[1:]
    # Submodules that mirror numpy's and scipy's namespaces keep their path;
    # the functions of every other module are tapegrad's own.
    public = path if path and path[0] in _NAMESPACES else []
    return ".".join([*public, fn.__name__])


_NAMESPACES = ("linalg", "scipy")


def _document(fn: Callable[..., Any], doc: str) -> None:
    details = inspect.cleandoc(fn.__doc__) if fn.__doc__ else ""
    fn.__doc__ = doc + ("\n\n" + details if details else "")


def composite(*, doc: str, numpy: str | None = None, method: str | None = None,
              arity: int = 1) -> Callable[[F], F]:
    """Declare a function written as a composition of recorded ops.

    Its gradient comes from the ops it is made of. ``numpy`` names the numpy
    callables that dispatch to it (space-separated), ``method`` its Tensor
    method; ``doc`` becomes the first line of its docstring. The declaration
    is kept on the function; :func:`register` enters it in the catalogue.

    Example (python/tapegrad/array_ops.py declares ``mean`` so)::

        @composite(doc="Mean over axis, as numpy.mean.", numpy="numpy.mean", method="mean")
        def mean(x, axis=None, keepdims=False):
            ...

        >>> from tapegrad import catalogue
        >>> catalogue.OPS["mean"].numpy, catalogue.OPS["mean"].method
        (('numpy.mean',), 'mean')
    """

    def declare(fn: F) -> F:
        fn.catalogue_entry = Op(  # type: ignore[attr-defined]
            name=fn.__name__, function=_function_name(fn), kind="composite",
            numpy=_paths(numpy), method=method, arity=arity, doc=doc, code=None)
        _document(fn, doc)
        return fn

    return declare


def wraps_op(name: str) -> Callable[[F], F]:
    """Tie a Python function to native array op ``name``, whose entry documents it.

    The tie is kept on the function; :func:`register` makes the function the
    op's implementation.

    Example:
        >>> from tapegrad import catalogue
        >>> catalogue.IMPLEMENTATIONS["sum"].__doc__.splitlines()[0]
        'Sum over axis (an int, a tuple, or None for every axis), as numpy.sum.'
    """

    def declare(fn: F) -> F:
        op = NATIVE[name]
        function = _function_name(fn)
        if op.function != function:
            raise ValueError(f"catalogue: {function} wraps op {name}, whose function is "
                             f"{op.function}")
        fn.catalogue_entry = op  # type: ignore[attr-defined]
        _document(fn, op.doc)
        return fn

    return declare


def register(*modules: ModuleType) -> None:
    """Enter in the catalogue the functions each module declares with :func:`composite` or
    :func:`wraps_op`, in the modules' order, then each module's in its own order.

    tapegrad/__init__.py calls it once, with every module of ops: what the catalogue
    holds does not depend on which module happened to be imported first.

    Example:
        >>> import tapegrad as tg
        >>> tg.catalogue.IMPLEMENTATIONS["linalg.norm"] is tg.linalg.norm
        True
    """
    for module in modules:
        for fn in vars(module).values():
            op = getattr(fn, "catalogue_entry", None) if inspect.isfunction(fn) else None
            if op is None or fn.__module__ != module.__name__:
                continue  # not an op, or one imported from the module that declares it
            if op.kind == "composite":
                if OPS.get(op.function, op) != op:
                    raise ValueError(f"catalogue: {op.function} is declared twice")
                OPS[op.function] = op
            IMPLEMENTATIONS[op.function] = fn
    _maps.clear()


# ---- functions that record nothing ----

VALUES_ONLY: dict[str, str | None] = {
    **dict.fromkeys(["numpy.less", "numpy.less_equal", "numpy.greater", "numpy.greater_equal",
                     "numpy.equal", "numpy.not_equal"]),
    **dict.fromkeys(["numpy.sign", "numpy.floor", "numpy.ceil", "numpy.rint", "numpy.trunc",
                     "numpy.fix", "numpy.round", "numpy.around", "numpy.isfinite", "numpy.isnan",
                     "numpy.isinf", "numpy.signbit", "numpy.heaviside", "numpy.searchsorted",
                     "numpy.count_nonzero"]),
    # They read only a shape or a dtype, or make a new array of them: numpy users pass
    # Tensors to them (np.zeros_like(t)), and no gradient flows through a shape.
    **dict.fromkeys(["numpy.zeros_like", "numpy.ones_like", "numpy.full_like", "numpy.empty_like",
                     "numpy.shape", "numpy.ndim", "numpy.size", "numpy.result_type",
                     "numpy.iscomplexobj", "numpy.isrealobj"]),
    "numpy.argmax": "argmax",
    "numpy.argmin": "argmin",
    "numpy.argsort": "argsort",
    "numpy.nonzero": "nonzero",
}
"""numpy callables whose derivative is zero almost everywhere or undefined, or that
read only a shape or a dtype (zeros_like, shape, result_type), and their Tensor
methods: on Tensors they compute on the values and return plain ndarrays or
numbers, recording nothing, as comparisons do: a record whose gradient is zero
wherever it exists would cost memory and time and carry nothing.

They are declared here rather than as ops: they have no function of tapegrad's,
no record and no gradient, so none of an op's tests applies to them; kept in the
catalogue, next to the paths that do record, they are found and listed in one place
(tests/test_values_only.py checks each on Tensors against numpy). ``round`` and
``around`` are among them: PyTorch gives round a zero gradient, and a zero gradient
and none differ only where the input is used through round alone (then
``tapegrad.grad`` needs ``allow_unused=True``), as for floor and rint.
"""


# ---- what is built from the entries ----

def _resolve(path: str) -> Any:
    """The numpy or scipy object a dotted path names; None when its module is not loaded.

    tapegrad never imports scipy itself (``import tapegrad`` stays fast): a scipy
    callable can only reach a Tensor once the user has imported it.
    """
    module_name, _, attribute = path.rpartition(".")
    if module_name.split(".")[0] == "scipy":
        module = sys.modules.get(module_name)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, attribute, None) if module is not None else None


_maps: dict[str, Any] = {}
# One dict for the life of the process: the native dispatch holds it
# (Note [numpy dispatch]); rebuilding the maps updates it in place.
_UFUNC_CODES: dict[Any, int] = {}


def _build_maps() -> None:
    ufunc_codes = _UFUNC_CODES
    ufunc_codes.clear()
    ufuncs: dict[Any, tuple[Op, Callable[..., Any]]] = {}
    functions: dict[Any, tuple[Op, Callable[..., Any]]] = {}
    for function, op in OPS.items():
        impl = IMPLEMENTATIONS.get(function)
        if impl is None:
            continue
        for path in op.numpy:
            target = _resolve(path)
            if target is None:
                continue
            if isinstance(target, np.ufunc):
                ufuncs[target] = (op, impl)
                if op.kind == "elementwise" or op.name == "matmul":
                    ufunc_codes[target] = op.code
            else:
                functions[target] = (op, impl)
    values_only = {target for target in map(_resolve, VALUES_ONLY) if target is not None}
    _maps.update(ufunc_codes=ufunc_codes, ufuncs=ufuncs, functions=functions,
                 values_only=values_only,
                 scipy=tuple(sorted(m for m in sys.modules if m.startswith("scipy."))))


def _current() -> dict[str, Any]:
    # Built at first use, and again once a scipy module it names has been imported.
    if not _maps or any(m not in _maps["scipy"] for m in _SCIPY_MODULES if m in sys.modules):
        _maps.clear()
        _build_maps()
    return _maps


_SCIPY_MODULES = ("scipy.special", "scipy.linalg", "scipy.signal", "scipy.stats")


def ufunc_codes() -> dict[Any, int]:
    """numpy ufunc -> op code: the calls csrc/numpy_dispatch.cpp answers natively.

    The same dict every time, kept current (a scipy module imported later adds its ufuncs).
    """
    _current()
    return _UFUNC_CODES


def ufunc_implementation(ufunc: Any) -> tuple[Op, Callable[..., Any]] | None:
    """The entry and callable for a numpy or scipy ufunc, or None."""
    return _current()["ufuncs"].get(ufunc)


def function_implementation(func: Any) -> tuple[Op, Callable[..., Any]] | None:
    """The entry and callable for a numpy function (``__array_function__``), or None."""
    return _current()["functions"].get(func)


def is_values_only(func: Any) -> bool:
    """Whether a numpy ufunc or function is in VALUES_ONLY (computed on values, not recorded)."""
    return func in _current()["values_only"]


def differentiable_ufunc_names() -> list[str]:
    """Names of the ufuncs that record on Tensors, for error messages."""
    return sorted({u.__name__ for u in _current()["ufuncs"]})


def _as_method(fn: Callable[..., Any], op: Op) -> Callable[..., Any]:
    if op.arity == 1:
        def method(self: Any) -> Any:
            return fn(self)
    else:
        def method(self: Any, other: Any) -> Any:
            return fn(self, other)
    method.__name__ = method.__qualname__ = op.method or op.short_name
    method.__doc__ = f"``tapegrad.{op.function}`` as a method: {op.doc}"
    return method


def _values_method(path: str, name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _resolve(path)(self.data, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{path}`` of the value, as a plain ndarray; nothing is recorded."
    return method


def install_methods(cls: type) -> None:
    """Give ``cls`` (Tensor) each entry's method that it does not define itself.

    Methods whose numpy signature differs from the function's (``t.reshape(2, 3)``,
    ``t.transpose(1, 0)``) are written on Tensor by hand; the test checks they exist.
    VALUES_ONLY's methods (``t.argmax()``) compute on the value.
    """
    for path, name in VALUES_ONLY.items():
        if name and name not in vars(cls):
            setattr(cls, name, _values_method(path, name))
    for function, op in OPS.items():
        if not op.method or op.method in vars(cls):
            continue
        impl = IMPLEMENTATIONS[function]
        setattr(cls, op.method, impl if inspect.isfunction(impl) else _as_method(impl, op))


def exports(module: str = "tapegrad") -> dict[str, Callable[..., Any]]:
    """The functions the catalogue gives ``module``, by name."""
    return {op.short_name: IMPLEMENTATIONS[f] for f, op in OPS.items()
            if op.module == module and f in IMPLEMENTATIONS}


def load_all() -> None:
    """Import every module of tapegrad, for tests and docs that walk them all.

    ``import tapegrad`` has registered every op already (:func:`register`); this also
    imports the modules it leaves out, such as ``tapegrad.reference``.
    """
    import pkgutil  # only here: ``import tapegrad`` stays light

    package = __name__.rpartition(".")[0]
    for module in pkgutil.walk_packages([os.path.dirname(__file__)], package + "."):
        importlib.import_module(module.name)


def markdown() -> str:
    """The table of every op, for the README (tools/op_table.py writes it there)."""
    load_all()
    lines = ["| function | numpy / scipy | method | |", "|---|---|---|---|"]
    for function in sorted(OPS, key=lambda f: (f.count("."), f)):
        op = OPS[function]
        numpy = ", ".join(f"`{p}`" for p in op.numpy)
        method = f"`t.{op.method}`" if op.method else ""
        doc = op.doc.replace("|", "\\|")
        lines.append(f"| `tapegrad.{function}` | {numpy} | {method} | {doc} |")
    return "\n".join(lines) + "\n"


_BEGIN, _END = "<!-- op table: begin -->\n", "<!-- op table: end -->\n"


def readme_with_table(text: str) -> str:
    """``text`` (the README) with its op table replaced by the current one."""
    start, end = text.index(_BEGIN) + len(_BEGIN), text.index(_END)
    return text[:start] + markdown() + text[end:]

