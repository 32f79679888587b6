"""``tapegrad.compile``: record a function once, then replay its tape natively.

The first call with a new key (the arguments' structure, shapes and dtypes)
runs ``f`` on Tensors and keeps the tape it recorded (a ``_core.Trace``). Later
calls set the tape's input rows to the new values and run it forward and
backward in C++, with no Python line of ``f`` and no Tensor made. Branches ``f``
took on values are guards: a call whose values would take another branch traces
that path too. The rules and their reasons: Note [Compiled tapes] in
csrc/replay.hpp.
"""

from __future__ import annotations

import functools
import numbers
import operator
import os
import sys
import sysconfig
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from .array_ops import concatenate, reshape
from .array_ops import sum as _sum_of
from .autograd import enable_grad, grad
from .autograd import jvp as _eager_jvp
from .autograd import vjp as _eager_vjp
from .functional_api import differentiable_value
from .functional_api import value_and_grad as _eager_value_and_grad
from .tensor import Tensor

__all__ = ["CompiledFunction", "TraceError", "TraceWarning", "compile"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# Frames an escape's message looks past for the user's line: tapegrad's and the
# standard library's (copy.copy(t) reads the value inside copy.py).
_NOT_THE_USERS = (_PACKAGE, sysconfig.get_paths()["stdlib"])
# Traces kept per key: a loop whose trip count depends on a value traces once per
# count; past this many, the oldest go.
_MAX_TRACES = 32
# Keys kept: integer arrays and other static arguments key a trace by value, so
# labels that change every batch trace every batch; past this many keys, the
# oldest traced go (with one warning), and memory stays bounded.
_MAX_KEYS = 64


class TraceError(RuntimeError):
    """What ``f`` did while ``tapegrad.compile`` traced it cannot be replayed.

    Raised by the call that traces (the first with a new key), naming the line:
    a value that left the tape into Python (``float(t)``, ``t.item()``, ``t.data``,
    ``t.numpy()``, printing), an op under ``no_grad``, a user ``OperationRecord``.
    """


class TraceWarning(UserWarning):
    """``compile(f, fallback="eager")`` runs ``f`` eagerly: its trace raised TraceError."""


def _escape(what: str) -> None:
    """Raise TraceError for a value leaving the tape (the core calls this while tracing)."""
    frame = sys._getframe(1)
    through = None
    while frame is not None and frame.f_code.co_filename.startswith(_NOT_THE_USERS):
        if through is None and frame.f_code.co_filename.startswith(_PACKAGE):
            through = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        frame = frame.f_back
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "f"
    via = f" (through tapegrad's {through})" if through else ""
    if what == "Tensor.data":
        what = ("a Tensor's value was read into Python (t.data, float(t), t.item(), t.numpy(), "
                "printing, or a numpy function that works on values)")
    raise TraceError(
        f"tapegrad.compile: {what} at {where}{via}. A compiled tape replays recorded ops on new "
        "values, so this would be a constant of the trace. Keep the computation on Tensors "
        "(compare Tensors directly: `if t > 0:` is recorded as a guard), or pass "
        "fallback='eager' to run such a function eagerly")


_core.set_trace_hooks(TraceError, _escape)


def _forget_oldest(keys: dict) -> bool:
    """Past _MAX_KEYS entries, the first inserted go (the caller holds _keeping);
    whether any went."""
    forgot = len(keys) > _MAX_KEYS
    while len(keys) > _MAX_KEYS:
        del keys[next(iter(keys))]
    return forgot


def _users_stacklevel() -> int:
    """warnings.warn's stacklevel, from its caller, of the first frame outside tapegrad."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    return level


# ---- arguments: their structure, the key, the leaves ----

def _flat_key(args: tuple, nums: tuple[int, ...], leaves: list) -> Any:
    """A key for arguments that are floats, float ndarrays, or lists and tuples of them
    (a model's parameters), their leaves appended to `leaves`; None for any other."""
    layouts = []
    for a in args:
        kind = type(a)
        if kind is list or kind is tuple:
            inner = []
            for item in a:
                layout = _flat_layout(item)
                if layout is False:
                    return None
                inner.append(layout)
                leaves.append(item)
            layouts.append((kind, tuple(inner)))
            continue
        layout = _flat_layout(a)
        if layout is False:
            return None
        layouts.append(layout)
        leaves.append(a)
    return nums, tuple(layouts)


def _flat_layout(value: Any) -> Any:
    """None for a float, (shape, dtype) for a float ndarray, False for anything else."""
    kind = type(value)
    if kind is float:
        return None
    if kind is np.ndarray and value.dtype in _FLOATS:
        return value.shape, value.dtype.char
    return False


def _leaf_value(value: Any, where: str, differentiable: bool) -> Any:
    """A dynamic leaf's value (a float or a float ndarray), or None when value is static."""
    if differentiable:  # as the eager value_and_grad reads it
        return differentiable_value(value, where, "compile")
    if isinstance(value, Tensor):
        return _core.peek(value)
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype in _FLOATS:
            return array  # a numpy scalar as a 0-d array of its dtype, as the eager value_and_grad
        if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
            return None  # integer and boolean arrays key the trace
        differentiable_value(value, where, "compile")  # raises: complex, object, strings
    return value if isinstance(value, float) else None


def _static_key(value: Any, where: str) -> Any:
    """What keys a static argument: its value (arrays of integers by their bytes)."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        return ("array", array.shape, array.dtype.str, array.tobytes())
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"compile: {where} is a {type(value).__name__}, which is neither a value to trace "
            "(float, ndarray, Tensor, or a list, tuple or dict of them) nor hashable; pass "
            "it as a constant through a closure") from None
    return ("static", _typed(value))


def _typed(value: Any) -> Any:
    """A hashable value with the type of each part: 1 and 1.0, equal in Python, differ here."""
    if isinstance(value, (frozenset, tuple)):
        return type(value), type(value)(_typed(v) for v in value)
    return type(value), value


def _split(value: Any, where: str, differentiable: bool, leaves: list) -> Any:
    """The structure of value, leaves appended to `leaves`: (kind, ...) tuples that key a trace."""
    if isinstance(value, dict):  # keys with their types: {1: a} and {1.0: a} differ
        return ("dict", tuple((type(k), k) for k in value), tuple(
            _split(v, f"{where}[{k!r}]", differentiable, leaves) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        items = tuple(_split(v, f"{where}[{i}]", differentiable, leaves)
                      for i, v in enumerate(value))
        return ("list" if isinstance(value, list) else "tuple", type(value), items)
    leaf = _leaf_value(value, where, differentiable)
    if leaf is None:
        return ("const", _static_key(value, where), value)
    leaves.append(leaf)
    layout = ("float",) if isinstance(leaf, float) else (leaf.shape, leaf.dtype.str)
    return ("leaf", layout, differentiable)


def _key_of(structure: Any) -> Any:
    """The structure without the static values themselves (their keys stand for them)."""
    kind = structure[0]
    if kind == "const":
        return ("const", structure[1])
    if kind == "leaf":
        return structure
    if kind == "dict":
        return ("dict", structure[1], tuple(_key_of(s) for s in structure[2]))
    return (kind, structure[1], tuple(_key_of(s) for s in structure[2]))


def _rebuild(structure: Any, leaves: Any) -> Any:
    """The value of a structure, its leaves taken in order from the iterator `leaves`."""
    kind = structure[0]
    if kind == "const":
        return structure[2]
    if kind == "leaf":
        return next(leaves)
    if kind == "dict":
        return {k: _rebuild(s, leaves) for (_, k), s in zip(structure[1], structure[2])}
    items = [_rebuild(s, leaves) for s in structure[2]]
    if kind == "list":
        return items
    cls = structure[1]
    return cls(*items) if hasattr(cls, "_fields") else cls(items)


def _count_leaves(structure: Any) -> int:
    kind = structure[0]
    if kind == "leaf":
        return 1
    if kind == "const":
        return 0
    return sum(_count_leaves(s) for s in structure[2])


def _plain_output(value: Any) -> Any:
    """f's value as the eager value_and_grad gives it: a float, or an ndarray."""
    if isinstance(value, Tensor):
        value = _core.peek(value)
    if isinstance(value, np.ndarray):
        return float(value) if value.ndim == 0 else value
    return float(value) if isinstance(value, numbers.Real) else value


class CompiledFunction:
    """A function whose tape is recorded once and replayed natively: ``tapegrad.compile(f)``.

    ``cf(*args)`` is f's value; ``cf.value_and_grad(*args)`` and ``cf.grad(*args)``
    give what ``tapegrad.value_and_grad(f, argnums)`` gives, from a replay of the
    tape. See :func:`compile`.
    """

    def __init__(self, f: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
                 fallback: str | None = None) -> None:
        # @compile above @staticmethod: the function itself, never bound to an instance.
        self._static = isinstance(f, staticmethod)
        f = f.__func__ if isinstance(f, staticmethod) else f
        if not callable(f):
            raise TypeError(f"compile: f must be callable, got {type(f).__name__}")
        functools.update_wrapper(self, f)  # first: f's __dict__ must not overwrite ours
        if fallback not in (None, "eager"):
            raise ValueError(f"compile: fallback must be None or 'eager', got {fallback!r}")
        self._f = f
        self._argnums = _normal_argnums(argnums)
        self._single = not isinstance(argnums, (tuple, list))
        self._fallback = fallback
        self._traces: dict[Any, list] = {}
        self._drivers: dict[Any, Any] = {}  # derived compiled functions, and _JoinedOutputs
        self._flat: dict[Any, tuple] = {}
        self._eager_keys: dict = {}  # keys whose trace raised (fallback='eager'), oldest first
        # Whose TraceWarning this is: a driver's derived function shares its parent's,
        # so that one compiled function warns once (DESIGN 4.5).
        self._warns_for: CompiledFunction = self
        self._warned = False
        self._warned_keys = False
        self._several_keys: dict = {}  # keys whose f gave several outputs (the drivers')
        self._keeping = threading.Lock()  # guards the keys of _traces and _eager_keys

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Called by a function being traced, or on Tensors that require grad:
        # f runs on them, so that its ops join that trace or that graph.
        if _core.tracing() or _records(args) or _records(kwargs):
            return self._f(*args, **kwargs)
        return self._run(args, kwargs, self._argnums, self._single, grads=False)[0]

    def value_and_grad(self, *args: Any, argnums: int | tuple[int, ...] | None = None,
                       **kwargs: Any) -> tuple[Any, Any]:
        """``(f(*args), gradient)``, as ``tapegrad.value_and_grad(f, argnums)(*args)``.

        Example:
            >>> import numpy as np
            >>> import tapegrad as tg
            >>> cf = tg.compile(lambda w: np.sum(w * w))
            >>> cf.value_and_grad(np.array([1.0, 2.0]))
            (5.0, array([2., 4.]))
        """
        single = self._single if argnums is None else not isinstance(argnums, (tuple, list))
        nums = self._argnums if argnums is None else _normal_argnums(argnums)
        if _core.tracing():
            return _eager_value_and_grad(self._f, nums if not single else nums[0])(*args, **kwargs)
        return self._run(args, kwargs, nums, single, grads=True)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # As a method: bound to the instance, as a function is (argnums count it,
        # as with the eager value_and_grad on a method); the instance keys the
        # trace as any static argument does.
        return self if instance is None or self._static else _BoundCompiled(self, instance)

    def grad(self, *args: Any, argnums: int | tuple[int, ...] | None = None,
             **kwargs: Any) -> Any:
        """The gradient alone: ``value_and_grad(*args)[1]``.

        Example:
            >>> import tapegrad as tg
            >>> tg.compile(lambda x: x * x).grad(3.0)
            6.0
        """
        return self.value_and_grad(*args, argnums=argnums, **kwargs)[1]

    def __reduce__(self) -> Any:
        # A trace is this process's native tape: what pickles is f, argnums and
        # fallback, so the copy traces again where it is loaded. Made with the
        # decorator, the compiled function is itself its module's `f` (f cannot
        # be found by name): it pickles by that name, as functions do, wherever
        # the module can be imported again (not an interactive __main__).
        module = sys.modules.get(self.__module__)
        holder: Any = module
        for part in self.__qualname__.split("."):
            holder = getattr(holder, part, None)
        if holder is self and getattr(module, "__file__", None):
            return self.__qualname__
        return (CompiledFunction, (self._f, self._argnums[0] if self._single else self._argnums,
                                   self._fallback))

    # ---- torch.autograd.functional's drivers, f bound: each replays tapes ----
    # `inputs` is the tuple of f's positional arguments (floats and ndarrays), or
    # the one argument; results come back as plain floats and ndarrays.

    def vjp(self, inputs: Any, v: Any = None) -> tuple[Any, Any]:
        """``(f(*inputs), v^T J)``, as ``torch.autograd.functional.vjp``: one reverse sweep.

        ``v`` has the output's shape; it may be omitted for an output of one element.

        Example:
            >>> import numpy as np
            >>> import tapegrad as tg
            >>> cf = tg.compile(lambda x: x * x)
            >>> cf.vjp(np.array([1.0, 2.0]), np.array([1.0, 10.0]))
            (array([1., 4.]), array([ 2., 40.]))
        """
        args, as_tuple = _driver_inputs(inputs)
        nums = tuple(range(len(args)))
        if v is not None and not isinstance(v, (tuple, list)) and np.iscomplexobj(v):
            raise TypeError("compile: vjp's v must be real (floats), as the output: got a "
                            "complex value")
        if self._several(args):
            return self._joined(args).vjp(inputs, v)
        try:
            if v is None:
                return self._run(args, {}, nums, not as_tuple, grads=True)
            value, per_seed = self._run(args, {}, nums, not as_tuple, grads=True, seeds=[v])
        except _SeveralOutputs:
            return self._joined(args, several=True).vjp(inputs, v)
        return value, per_seed[0]

    def jvp(self, inputs: Any, v: Any) -> tuple[Any, Any]:
        """``(f(*inputs), J v)``, as ``torch.autograd.functional.jvp``: forward mode.

        ``v`` has the inputs' shapes (a tuple for a tuple of inputs). One replay
        computes the values, then a forward sweep carries the tangents ``v``
        through the same rows, each by its op's tangent rule.

        Example:
            >>> import numpy as np
            >>> import tapegrad as tg
            >>> cf = tg.compile(lambda x: x * x)
            >>> cf.jvp(np.array([1.0, 2.0]), np.array([1.0, 10.0]))
            (array([1., 4.]), array([ 2., 40.]))
        """
        args, as_tuple = _driver_inputs(inputs)
        for k, a in enumerate(args):
            if not _flat_input(a):
                raise TypeError(f"compile: jvp's inputs are floats and ndarrays, one tangent "
                                f"each (a tuple of them for several); input {k} is a "
                                f"{type(a).__name__}")
        vs = _driver_vectors(v, args, as_tuple, "jvp")
        if self._several(args):
            return self._joined(args).jvp(inputs, v)
        try:
            value, per_direction = self._run(args, {}, tuple(range(len(args))), not as_tuple,
                                             grads=False, tangents=[vs])
        except _SeveralOutputs:
            return self._joined(args, several=True).jvp(inputs, v)
        return value, _plain_output(per_direction[0])

    def hvp(self, inputs: Any, v: Any = None) -> tuple[Any, Any]:
        """``(f(*inputs), H v)``, as ``torch.autograd.functional.hvp``: the gradient of
        ``<grad f, v>``, a tape recorded once (through ``grad(create_graph=True)``).

        Example:
            >>> import numpy as np
            >>> import tapegrad as tg
            >>> cf = tg.compile(lambda x: tg.sum(x ** 3))
            >>> cf.hvp(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
            (9.0, array([ 6., 12.]))
        """
        args, as_tuple = _driver_inputs(inputs)
        if v is None and not (len(args) == 1 and np.size(args[0]) == 1):
            raise ValueError("compile: hvp's v can be omitted only for a single input with one "
                             "element; pass v with the inputs' shapes")
        vs = (1.0 if np.ndim(args[0]) == 0 else np.ones_like(args[0]),) if v is None else (
            _driver_vectors(v, args, as_tuple, "hvp"))
        value = self(*args)
        product = self._derived("hvp", _gradient_dot, len(args), argnums=tuple(range(len(args))))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "value_and_grad: the value of .* does not depend")
            hv = product.grad(*args, *vs)
        return value, hv if as_tuple else hv[0]

    def jacobian(self, inputs: Any) -> Any:
        """The Jacobian, as ``torch.autograd.functional.jacobian``: blocks of shape
        ``out.shape + in.shape`` (a tuple of them for a tuple of inputs).

        One forward of values, then a sweep per row of the Jacobian or per
        column, whichever are fewer: a reverse sweep per output element, or,
        when the output has more elements than the inputs, a forward tangent
        sweep per input element.

        Example:
            >>> import numpy as np
            >>> import tapegrad as tg
            >>> tg.compile(lambda x: x * x).jacobian(np.array([1.0, 2.0]))
            array([[2., 0.],
                   [0., 4.]])
        """
        args, as_tuple = _driver_inputs(inputs)
        nums = tuple(range(len(args)))
        if self._several(args):
            return self._joined(args).jacobian(inputs)
        try:
            value = self._run(args, {}, nums, False, grads=False)[0]  # the sweeps' trace
        except _SeveralOutputs:
            return self._joined(args, several=True).jacobian(inputs)
        out_shape = np.shape(value)
        n_in = sum(int(np.size(a)) for a in args)
        n_out = int(np.size(value))
        # Forward sweeps when the output is the larger, for floats and ndarrays,
        # and unless a hook changes gradients (a tangent sweep calls none).
        if n_out > n_in and all(_flat_input(a) for a in args) and not self._hooked(args, nums):
            units = [(j, k) for j, a in enumerate(args) for k in range(int(np.size(a)))]
            _, columns = self._run(args, {}, nums, False, grads=False,
                                   tangents=[_unit(args, j, k) for j, k in units])
            blocks = []
            for j, a in enumerate(args):
                mine = [np.asarray(c) for (i, _), c in zip(units, columns) if i == j]
                block = (np.stack(mine, axis=-1) if mine
                         else np.zeros((*out_shape, 0), dtype=np.asarray(value).dtype))
                blocks.append(block.reshape(out_shape + np.shape(a)))
        else:
            seeds = [_basis(value, i) for i in range(n_out)]
            _, per_seed = self._run(args, {}, nums, False, grads=True, seeds=seeds)
            blocks = [(np.stack([np.asarray(g[j]) for g in per_seed]) if per_seed
                       else np.zeros(0, dtype=np.result_type(a, 0.0)))
                      .reshape(out_shape + np.shape(a)) for j, a in enumerate(args)]
        blocks = [_plain_block(b) for b in blocks]
        return tuple(blocks) if as_tuple else blocks[0]

    def hessian(self, inputs: Any) -> Any:
        """The Hessian, as ``torch.autograd.functional.hessian``: for one input, of
        shape ``in.shape + in.shape``; for a tuple, a tuple of tuples of blocks.

        The Jacobian of the gradient: its tape (through ``grad(create_graph=True)``)
        recorded once, then one reverse sweep per gradient element.

        Example:
            >>> import numpy as np
            >>> import tapegrad as tg
            >>> tg.compile(lambda x: tg.sum(x ** 3)).hessian(np.array([1.0, 2.0]))
            array([[ 6.,  0.],
                   [ 0., 12.]])
        """
        args, as_tuple = _driver_inputs(inputs)
        gradient = self._derived("hessian", _flat_gradient, len(args),
                                 argnums=tuple(range(len(args))))
        flat = gradient.jacobian(tuple(args))
        sizes = [int(np.size(a)) for a in args]
        offsets = np.cumsum([0, *sizes])
        rows = []
        for i, a in enumerate(args):
            rows.append(tuple(
                _plain_block(np.asarray(flat[j])[offsets[i]:offsets[i + 1]].reshape(
                    np.shape(a) + np.shape(b))) for j, b in enumerate(args)))
        return tuple(rows) if as_tuple else rows[0][0]

    def _joined(self, args: tuple, several: bool = False) -> _JoinedOutputs:
        """f with its outputs joined, for the drivers (Note [Several outputs]); several:
        these arguments' key gave several outputs, so that later calls go straight there
        (not through a trace of f that raises: f's Python would run on every call)."""
        joined = self._drivers.get(("joined", len(args)))
        if joined is None:
            joined = self._drivers[("joined", len(args))] = _JoinedOutputs(self, len(args))
        if several:
            key = self._layout(args, {}, tuple(range(len(args))))[1][3]
            with self._keeping:
                self._several_keys[key] = None
                _forget_oldest(self._several_keys)
        return joined

    def _several(self, args: tuple) -> bool:
        """Whether these arguments' key gave several outputs before."""
        return bool(self._several_keys) and (
            self._layout(args, {}, tuple(range(len(args))))[1][3] in self._several_keys)

    def _hooked(self, args: tuple, nums: tuple[int, ...]) -> bool:
        """Whether a trace of this call has hooks (that may change its gradients)."""
        key = self._layout(args, {}, nums)[1][3]
        return any(trace.hooks for trace in self._traces.get(key, ()))

    def _derived(self, name: str, build: Callable[..., Any], n: int,
                 argnums: int | tuple[int, ...]) -> CompiledFunction:
        """A compiled function made from f for a driver (kept: its traces are reused)."""
        key = (name, n)
        derived = self._drivers.get(key)
        if derived is None:
            derived = self._drivers[key] = CompiledFunction(build(self._f, n), argnums=argnums,
                                                            fallback=self._fallback)
            derived._warns_for = self._warns_for
        return derived

    @property
    def trace_count(self) -> int:
        """How many traces are kept (one per key and per path through f's branches)."""
        return sum(len(traces) for traces in list(self._traces.values()))

    # ---- one call ----

    def _layout(self, args: tuple, kwargs: dict, nums: tuple[int, ...]) -> tuple[list, tuple]:
        """A call's leaves (its float and array values, in order), and what keys its trace:
        (positions, structure, kw_structure, key, wrt)."""
        # Flat arguments (floats and float ndarrays) are their own leaves: what
        # the general path works out from them is kept by their layouts.
        leaves: list = []
        flat_key = None if kwargs else _flat_key(args, nums, leaves)
        known = self._flat.get(flat_key) if flat_key is not None else None
        if known is not None:
            return leaves, known
        positions = _positions(nums, len(args), self._f)
        leaves = []
        structure = tuple(_split(a, f"argument {i}", i in positions, leaves)
                          for i, a in enumerate(args))
        kw_structure = _split(kwargs, "keyword arguments", False, leaves)
        key = (tuple(_key_of(s) for s in structure), _key_of(kw_structure))
        # The leaves of each argument differentiated, in argnums' order.
        firsts = [0]
        for s in structure:
            firsts.append(firsts[-1] + _count_leaves(s))
        wrt = [k for n in positions for k in range(firsts[n], firsts[n + 1])]
        layout = (positions, structure, kw_structure, key, wrt)
        if flat_key is not None:
            if len(self._flat) >= _MAX_KEYS:  # bounded as the traces are: shapes that vary
                self._flat = {}  # a new dict: a thread reading the old one is unharmed
            self._flat[flat_key] = layout
        return leaves, layout

    def _run(self, args: tuple, kwargs: dict, nums: tuple[int, ...], single: bool,
             grads: bool, seeds: list | None = None,
             tangents: list | None = None) -> tuple[Any, Any]:
        """(value, gradients) from a replay (or a new trace); with seeds, a list of
        gradients, one per seed (the output's gradient a reverse sweep starts from);
        with tangents (one per leaf, per direction), a list of J t, one per direction."""
        leaves, (positions, structure, kw_structure, key, wrt) = self._layout(args, kwargs, nums)
        if key in self._eager_keys:
            return self._eager(args, kwargs, nums, single, grads, seeds, tangents)
        for trace in self._traces.get(key, ()):  # a busy one replays None, as a failed guard
            if grads and seeds is None and not trace.scalar_output:
                value = trace.replay(leaves, None, None, None)  # for the error's shape
                raise _not_scalar(self._f, None if value is None else np.shape(value[0]))
            ran = trace.replay(leaves, wrt if grads else None, seeds, tangents)
            if ran is not None:
                return self._results(ran, structure, positions, single, grads, seeds, tangents)
        try:
            ran = self._trace(key, structure, kw_structure, leaves, wrt if grads else None, seeds,
                              tangents)
        except TraceError as error:
            if self._fallback != "eager":
                raise
            with self._keeping:  # bounded as the traces' keys are
                self._eager_keys[key] = None
                _forget_oldest(self._eager_keys)
            owner = self._warns_for
            if not owner._warned:
                owner._warned = True
                warnings.warn(f"{error} -- running {getattr(owner._f, '__name__', 'f')} eagerly "
                              "(fallback='eager')", TraceWarning, stacklevel=_users_stacklevel())
            return self._eager(args, kwargs, nums, single, grads, seeds, tangents)
        return self._results(ran, structure, positions, single, grads, seeds, tangents)

    def _trace(self, key: Any, structure: tuple, kw_structure: Any, leaves: list,
               wrt: list[int] | None, seeds: list | None = None,
               tangents: list | None = None) -> Any:
        trace = _core.Trace()
        trace.push()
        try:
            # Recorded whatever the caller's grad mode: as torch.func's transforms, a
            # compiled function gives its gradients inside no_grad too.
            with enable_grad():
                tensors = [Tensor(v) for v in leaves]
                feed = iter(tensors)
                call_args = [_rebuild(s, feed) for s in structure]
                call_kwargs = _rebuild(kw_structure, feed)
                out = self._f(*call_args, **call_kwargs)
        finally:
            trace.pop()
        _check_output(out, self._f, scalar=wrt is not None and seeds is None)
        trace.finish(tensors, out)
        if wrt and seeds is None and not trace.depends_on(wrt):
            warnings.warn(  # the eager value_and_grad's warning
                f"value_and_grad: the value of {getattr(self._f, '__name__', 'f')} does not "
                "depend on the arguments it differentiates (it has no recorded history from "
                "them); their gradients are zero", stacklevel=4)
        # f just ran on these values, so numpy has warned (or raised) as its errstate
        # says; the replay on the same values must not warn a second time.
        with np.errstate(all="ignore"):
            ran = trace.replay(leaves, wrt, seeds, tangents)
        if ran is None:
            raise TraceError(
                f"compile: {getattr(self._f, '__name__', 'f')} took another branch when its "
                "tape was run again on the same values: does it read randomness or a global "
                "that changes? Pass such values as arguments")
        with self._keeping:  # threads tracing at once: one changes the keys at a time
            traces = self._traces.setdefault(key, [])
            traces.append(trace)
            if len(traces) > _MAX_TRACES:
                del traces[0]
            # Past _MAX_KEYS keys, the first traced go (a key used since traces again).
            forgot = _forget_oldest(self._traces)
            warn, self._warned_keys = forgot and not self._warned_keys, self._warned_keys or forgot
        if warn:
            self._warn_of_keys()
        return ran

    def _warn_of_keys(self) -> None:
        warnings.warn(
            f"compile: {getattr(self._f, '__name__', 'f')} has been traced for more than "
            f"{_MAX_KEYS} argument keys, and the oldest traces are dropped. A trace is keyed "
            "by the arguments' structure, shapes and dtypes, and by the value of integer and "
            "boolean arrays, ints and other values that are not floats: one that changes on "
            "every call (labels, a step counter, a length) traces on every call. Pass such "
            "values as floats where f allows, or use tapegrad.value_and_grad",
            stacklevel=_users_stacklevel())

    def _results(self, ran: tuple, structure: tuple, positions: list[int], single: bool,
                 grads: bool, seeds: list | None, tangents: list | None = None) -> tuple[Any, Any]:
        value = _plain_output(ran[0])
        if tangents is not None:
            return value, ran[1]
        if not grads:
            return value, None

        def per_arg(gradients: list) -> Any:
            feed = iter(gradients)
            rebuilt = tuple(_rebuild(structure[n], feed) for n in positions)
            return rebuilt[0] if single else rebuilt

        if seeds is None:
            return value, per_arg(ran[1])
        return value, [per_arg(g) for g in ran[1]]

    def _eager(self, args: tuple, kwargs: dict, nums: tuple[int, ...], single: bool,
               grads: bool, seeds: list | None = None,
               tangents: list | None = None) -> tuple[Any, Any]:
        f = _one_output(self._f, grads and seeds is None)  # several outputs raise, as traced
        if seeds is not None or tangents is not None:  # a driver's sweeps, on the eager tape
            return self._eager_sweeps(f, args, nums, single, seeds, tangents)
        if grads:
            return _eager_value_and_grad(f, nums[0] if single else nums)(*args, **kwargs)
        return _plain_output(f(*args, **kwargs)), None

    @staticmethod
    def _eager_sweeps(f: Callable[..., Any], args: tuple, nums: tuple[int, ...], single: bool,
                      seeds: list | None, tangents: list | None) -> tuple[Any, Any]:
        """What a replay with seeds or tangents gives, from eager vjps and jvps (the drivers'
        arguments are floats and ndarrays, every one differentiated)."""
        tensors = tuple(Tensor(a) for a in args)
        if tangents is not None:
            results = [_eager_jvp(f, tensors, v=tuple(d)) for d in tangents]
            value = f(*args) if not results else results[0][0]
            return _plain_output(value), [_plain_output(r[1]) for r in results]
        per_seed = []
        for seed in seeds or ():
            value, pulled = _eager_vjp(f, tensors, v=seed)
            chosen = [_plain_like(pulled[n], args[n]) for n in nums]
            per_seed.append(chosen[0] if single else tuple(chosen))
        if not per_seed:  # no seed (an empty output's jacobian): the value alone
            value = f(*args)
        return _plain_output(value), per_seed


# Note [Several outputs]
# A tape has one output, but torch.autograd.functional's vjp, jvp and jacobian take
# a function of several (a tuple). For those, the drivers compile f with its
# outputs raveled and joined into one vector, and split what comes back. Which
# shapes and dtypes the outputs had can differ from one guarded path to another,
# so the joined vector ends with a constant: the number of the outputs' layout,
# written down when the path was traced (or ran eagerly, under fallback='eager').
# Its row of the Jacobian is zero, and the split drops it. Past _MAX_KEYS layouts
# (shapes that keep changing) the joined function starts afresh, traces and all.
class _JoinedOutputs:
    """The drivers of a compiled f whose value is several outputs (Note [Several outputs])."""

    def __init__(self, compiled: CompiledFunction, n: int) -> None:
        self._parent, self._n = compiled, n
        self._state = self._fresh()

    def _fresh(self) -> tuple[CompiledFunction, list]:
        """A joined function and the layouts its markers number: replaced together, so a
        call that took one pair reads its own."""
        f, layouts = self._parent._f, []
        numbered: dict[tuple, int] = {}  # layout -> its marker
        name = getattr(f, "__name__", "f")

        def joined(*xs: Any) -> Any:
            outs = f(*xs)
            if not isinstance(outs, (tuple, list)):
                raise TypeError(f"compile: {name} returned several outputs when traced "
                                "before, and one now: the drivers need one or the other")
            for k, o in enumerate(outs):
                if not isinstance(o, (Tensor, numbers.Real, np.ndarray)):
                    raise TypeError(f"compile: output {k} of {name} is a {type(o).__name__}: "
                                    "the outputs must be Tensors or numbers (a flat tuple)")
            layout = tuple((tuple(np.shape(o)), _dtype_of(o)) for o in outs)
            if layout not in numbered:
                numbered[layout] = len(layouts)
                layouts.append(layout)
            marker = np.array([float(numbered[layout])])
            return concatenate([reshape(o, (-1,)) for o in outs] + [marker])

        joined.__name__ = name
        derived = CompiledFunction(joined, argnums=tuple(range(self._n)),
                                   fallback=self._parent._fallback)
        derived._warns_for = self._parent._warns_for
        return derived, layouts

    def _joined(self) -> tuple[CompiledFunction, list]:
        state = self._state
        if len(state[1]) > _MAX_KEYS:
            state = self._state = self._fresh()
        return state

    @staticmethod
    def _layout(layouts: list, value: Any) -> tuple:
        return layouts[int(np.asarray(value).reshape(-1)[-1])]

    @staticmethod
    def _split(layout: tuple, flat: Any, trailing: tuple = (), dtype: Any = None) -> tuple:
        """flat's leading axis cut into the outputs (its marker dropped), each reshaped
        (trailing: the rest of a Jacobian block's shape) and cast to its dtype."""
        pieces, start = [], 0
        for shape, out_dtype in layout:
            size = int(np.prod(shape, dtype=np.int64))
            piece = np.asarray(flat)[start:start + size].reshape(tuple(shape) + trailing)
            pieces.append(piece.astype(np.result_type(out_dtype, dtype) if dtype else out_dtype,
                                       copy=False))
            start += size
        return tuple(pieces)

    def vjp(self, inputs: Any, v: Any) -> tuple[Any, Any]:
        compiled, layouts = self._joined()
        args, _ = _driver_inputs(inputs)
        value = compiled(*args)
        layout = self._layout(layouts, value)
        if v is None:
            if any(int(np.prod(shape)) != 1 for shape, _ in layout):
                raise ValueError("compile: vjp's v can be omitted only when every output has "
                                 "one element; pass one v per output (a tuple)")
            v = tuple(np.ones(shape) for shape, _ in layout)
        if not isinstance(v, (tuple, list)) or len(v) != len(layout):
            raise ValueError(f"compile: vjp of a function with {len(layout)} outputs takes "
                             "a tuple of as many v, one of each output's shape")
        for k, ((shape, _), x) in enumerate(zip(layout, v)):
            if np.iscomplexobj(x):
                raise TypeError("compile: vjp's v must be real (floats), as the outputs: got "
                                f"a complex value for output {k}")
            if np.shape(x) != shape:
                raise ValueError(f"compile: vjp's v for output {k} must have its shape "
                                 f"{shape}, got {np.shape(x)}")
        seed = np.concatenate([np.ravel(np.asarray(x, dtype=np.asarray(value).dtype))
                               for x in v] + [np.zeros(1, dtype=np.asarray(value).dtype)])
        _, pulled = compiled.vjp(inputs, seed)
        return _plain_outputs(self._split(layout, value)), pulled

    def jvp(self, inputs: Any, v: Any) -> tuple[Any, Any]:
        compiled, layouts = self._joined()
        value, tangent = compiled.jvp(inputs, v)
        layout = self._layout(layouts, value)
        return (_plain_outputs(self._split(layout, value)),
                _plain_outputs(self._split(layout, tangent)))

    def jacobian(self, inputs: Any) -> Any:
        compiled, layouts = self._joined()
        args, as_tuple = _driver_inputs(inputs)
        layout = self._layout(layouts, compiled(*args))
        blocks = compiled.jacobian(inputs)
        blocks = blocks if as_tuple else (blocks,)
        per_input = [self._split(layout, np.reshape(b, (-1, *np.shape(a))), np.shape(a),
                                 _dtype_of(a)) for a, b in zip(args, blocks)]
        return tuple(tuple(_plain_block(p[i]) for p in per_input) if as_tuple
                     else _plain_block(per_input[0][i]) for i in range(len(layout)))


def _plain_outputs(pieces: tuple) -> tuple:
    return tuple(_plain_output(p) for p in pieces)


def _dtype_of(value: Any) -> np.dtype:
    """A value's dtype as a trace sees it, without reading it: a Tensor's, a float array's
    or numpy float scalar's own, else float64 (a Python number, an int array)."""
    if isinstance(value, Tensor):
        return np.dtype(value.dtype)
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype in _FLOATS:
        return np.asarray(value).dtype
    return np.dtype(np.float64)


class _BoundCompiled:
    """A compiled function read from an instance (a decorated method): the instance is
    its first argument, as a bound method's is.

    Example:
        >>> import tapegrad as tg
        >>> class Model:
        ...     scale = 3.0
        ...     @tg.compile(argnums=1)
        ...     def loss(self, w):
        ...         return w * w * self.scale
        >>> Model().loss.value_and_grad(2.0)
        (12.0, 12.0)
    """

    __slots__ = ("_compiled", "_instance")

    def __init__(self, compiled: CompiledFunction, instance: Any) -> None:
        self._compiled, self._instance = compiled, instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._compiled(self._instance, *args, **kwargs)

    def value_and_grad(self, *args: Any, argnums: int | tuple[int, ...] | None = None,
                       **kwargs: Any) -> tuple[Any, Any]:
        """``(f(instance, *args), gradient)``: the compiled function's, bound."""
        return self._compiled.value_and_grad(self._instance, *args, argnums=argnums, **kwargs)

    def grad(self, *args: Any, argnums: int | tuple[int, ...] | None = None,
             **kwargs: Any) -> Any:
        """The gradient alone, of ``f(instance, *args)``."""
        return self._compiled.grad(self._instance, *args, argnums=argnums, **kwargs)

    @property
    def trace_count(self) -> int:
        """The compiled function's (its traces are the instance's and every other's)."""
        return self._compiled.trace_count

    def _no_driver(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "compile: the drivers (vjp, jvp, jacobian, hvp, hessian) differentiate every input, "
            "and a method's instance is no float or array: compile a function of the arrays "
            "alone (a closure over the instance) for them")

    vjp = jvp = jacobian = hvp = hessian = _no_driver


def _plain_like(gradient: Tensor, arg: Any) -> Any:
    """An eager gradient as value_and_grad gives it for arg: a float for a float."""
    value = _core.peek(gradient)
    return float(value) if isinstance(arg, float) else np.asarray(value)


# ---- what the drivers compile ----

def _grad_of(f: Callable[..., Any], xs: tuple) -> list:
    """f's gradients w.r.t. xs, with their history (zeros where f does not use one). xs are
    the trace's Tensors, or plain values when a driver runs eagerly (fallback='eager')."""
    xs = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in xs)
    grads = grad(f(*xs), xs, create_graph=True, allow_unused=True)
    return [x * 0.0 if g is None else g for x, g in zip(xs, grads)]


def _gradient_dot(f: Callable[..., Any], n: int) -> Callable[..., Any]:
    """x, v -> <grad f(x), v>: its gradient in x is H v."""
    def dot(*rest: Any) -> Any:
        xs, vs = rest[:n], rest[n:]
        return sum((_sum_of(g * v) for g, v in zip(_grad_of(f, xs), vs)), 0.0)
    return dot


def _flat_gradient(f: Callable[..., Any], n: int) -> Callable[..., Any]:
    """x -> f's gradient, every input's flattened and joined (its Jacobian is the Hessian)."""
    def flat(*xs: Any) -> Any:
        return concatenate([reshape(g, (-1,)) for g in _grad_of(f, xs)])
    return flat


def _driver_inputs(inputs: Any) -> tuple[tuple, bool]:
    """The positional arguments, and whether they came as a tuple (torch's convention)."""
    if isinstance(inputs, tuple):
        return inputs, True
    return (inputs,), False


def _driver_vectors(v: Any, args: tuple, as_tuple: bool, what: str) -> tuple:
    vs = tuple(v) if as_tuple else (v,)
    if len(vs) != len(args):
        raise ValueError(f"compile: {what} takes one v per input: {len(args)} inputs, {len(vs)} "
                         "vectors")
    for a, x in zip(args, vs):
        if np.iscomplexobj(x):
            raise TypeError(f"compile: {what}'s v must be real (floats), as the inputs: got a "
                            "complex value")
        if np.shape(a) != np.shape(x):
            raise ValueError(f"compile: {what}'s v must have the inputs' shapes: {np.shape(a)} "
                             f"and {np.shape(x)}")
    return tuple(float(x) if np.ndim(a) == 0 and not isinstance(a, np.ndarray) else
                 np.asarray(x, dtype=np.asarray(a).dtype if np.asarray(a).dtype in _FLOATS
                            else np.float64) for a, x in zip(args, vs))


def _flat_input(a: Any) -> bool:
    """A driver input with one tangent of its own shape: a number or an ndarray."""
    return isinstance(a, (float, int, np.ndarray, np.generic)) and not isinstance(a, bool)


def _unit(args: tuple, j: int, k: int) -> tuple:
    """Tangents for every input: zero but element k of input j (floats for float inputs)."""
    tangents = []
    for i, a in enumerate(args):
        t = np.zeros(np.shape(a))
        if i == j:
            t.reshape(-1)[k] = 1.0
        tangents.append(float(t) if isinstance(a, (float, int)) else t)
    return tuple(tangents)


def _basis(value: Any, i: int) -> Any:
    """The i-th unit vector of the output's layout (1.0 for a float output)."""
    if isinstance(value, float):
        return 1.0
    e = np.zeros_like(value)
    e.reshape(-1)[i] = 1.0
    return e


def _plain_block(block: np.ndarray) -> Any:
    return float(block) if block.ndim == 0 else block


def _records(value: Any) -> bool:
    """Whether value holds a Tensor that requires grad (in lists, tuples and dicts)."""
    if isinstance(value, Tensor):
        return value.requires_grad
    if isinstance(value, dict):
        return any(_records(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_records(v) for v in value)
    return False


def _normal_argnums(argnums: int | tuple[int, ...]) -> tuple[int, ...]:
    nums = ((operator.index(argnums),) if not isinstance(argnums, (tuple, list))
            else tuple(operator.index(a) for a in argnums))
    if not nums:
        raise ValueError("compile: argnums is empty; name the arguments to differentiate")
    if len(set(nums)) != len(nums):
        raise ValueError(f"compile: argnums {nums} repeats an argument")
    return nums


def _positions(nums: tuple[int, ...], n_args: int, f: Any) -> list[int]:
    positions = []
    for n in nums:
        if not -n_args <= n < n_args:
            raise ValueError(f"compile: argnums names argument {n}, but "
                             f"{getattr(f, '__name__', 'f')} was called with {n_args} "
                             "positional arguments")
        positions.append(n % n_args)
    return positions


def _not_scalar(f: Any, ran_shape: Any) -> TypeError:
    got = f", got shape {ran_shape}" if ran_shape is not None else ""
    return TypeError(
        f"compile: {getattr(f, '__name__', 'f')} must return a scalar (a Tensor of one element) "
        f"for its gradient{got}. Reduce it (e.g. tapegrad.sum), or call the compiled function "
        "for its value alone")


def _one_output(f: Callable[..., Any], scalar: bool) -> Callable[..., Any]:
    """f, raising _SeveralOutputs where it returns a tuple or list, as a trace of it does."""
    @functools.wraps(f)
    def checked(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        if isinstance(out, (tuple, list)):
            _check_output(out, f, scalar)
        return out
    return checked


class _SeveralOutputs(TypeError):
    """f returned a tuple or list: a tape has one output, so the drivers that take several
    (vjp, jvp, jacobian) join them (Note [Several outputs])."""


def _check_output(out: Any, f: Any, scalar: bool) -> None:
    name = getattr(f, "__name__", "f")
    if isinstance(out, (tuple, list)):
        raise _SeveralOutputs(
            f"compile: {name} returns {len(out)} outputs (a {type(out).__name__}); "
            + ("value_and_grad and grad need one scalar" if scalar else
               "a compiled function's value is one Tensor or number")
            + ": the drivers vjp, jvp and jacobian take several")
    if isinstance(out, Tensor):
        if scalar and np.size(_core.peek(out)) != 1:
            raise _not_scalar(f, out.shape)
        return
    if isinstance(out, np.ndarray) and scalar and out.size != 1:
        raise _not_scalar(f, out.shape)
    if isinstance(out, (numbers.Real, np.ndarray)):
        return
    raise TypeError(f"compile: {name} must return a Tensor or a number, got "
                    f"{type(out).__name__}")


def compile(f: Callable[..., Any] | None = None, argnums: int | tuple[int, ...] = 0,
            fallback: str | None = None) -> Any:
    """Record ``f`` once per argument key, then replay its tape natively.

    ``compile(f, argnums=0, fallback=None)`` has the signature and results of
    ``tapegrad.value_and_grad(f, argnums)``: ``cf.value_and_grad(*args)`` is
    ``(value, gradient)``, ``cf.grad(*args)`` the gradient, ``cf(*args)`` the value.
    Arguments are floats, ndarrays, Tensors, or lists, tuples and dicts of them
    (ints, strings and other hashable values outside ``argnums`` are constants
    that key the trace). The first call with a new structure, shape or dtype runs
    ``f`` on Tensors and keeps its tape; later calls run the tape forward and
    backward in C++ without running ``f``. A value ``f`` branches on (``if t > 0``,
    ``bool(t)``, ``max(t, u)``) is a guard: a call that would branch otherwise
    traces that path too. A value read into Python (``float(t)``, ``t.item()``,
    ``t.data``, printing) raises TraceError, naming the line, unless
    ``fallback="eager"``, which runs such an ``f`` eagerly with one TraceWarning.
    Randomness and globals ``f`` reads are constants of the trace: pass them as
    arguments. Usable as a decorator, with or without arguments.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> @tg.compile
        ... def loss(w, x):
        ...     return np.sum(np.tanh(x @ w) ** 2)
        >>> value, g = loss.value_and_grad(np.zeros(2), np.eye(2))
        >>> value, g
        (0.0, array([0., 0.]))
    """
    if f is None:
        return functools.partial(compile, argnums=argnums, fallback=fallback)
    return CompiledFunction(f, argnums=argnums, fallback=fallback)
