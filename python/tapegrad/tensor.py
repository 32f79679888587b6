"""Tensor: a value (a float or a float32/float64 ndarray) whose operations are recorded.

Each operator is one call into the native core: it computes the value, appends a
record to this thread's tape and builds the result Tensor, so no Python runs per op.
"""

from __future__ import annotations

import html
import math
import sys
from typing import Any

import numpy as np

from . import _core
from . import array_ops as _ops
from .numpy_interop import array_function


class _TensorMeta(type):
    """Gives the class the seed's ``Tensor._counter``, read from this thread's tape."""

    @property
    def _counter(cls) -> int:
        return _core.get_counter()

    @_counter.setter
    def _counter(cls, value: int) -> None:
        _core.set_counter(value)


class Tensor(_core.TensorBase, metaclass=_TensorMeta):
    """A value whose operations are recorded for reverse-mode differentiation.

    ``Tensor(data, label=None)``: ``data`` is a number (kept as a Python float)
    or array-like (kept as a float32 or float64 ndarray; integers and booleans
    become float64). ``label`` defaults to ``tensor_N``, N from
    ``Tensor._counter``. ``requires_grad`` (keyword only) is True, as in the seed.
    An ndarray is copied, as ``np.array`` and ``torch.tensor`` copy, and the value is
    read-only: a recorded graph keeps the values it saw. ``copy=False`` (keyword
    only; or ``tapegrad.as_tensor``) shares the caller's array instead: then do
    not write into it while a graph uses it.

    Example:
        >>> import tapegrad as tg
        >>> tg.clear_history()
        >>> x = tg.Tensor(3.0, "x")
        >>> y = x * x + 1
        >>> tg.compute_gradients(y, [x])
        [6.0]
        >>> x
        x: 3.0
    """

    __slots__ = ()

    @classmethod
    def create(cls, data: Any, label: str | None = None) -> Tensor:
        """Make a Tensor: the seed's factory, same as ``Tensor(data, label)``.

        Example:
            >>> Tensor.create(2.0, "x")
            x: 2.0
        """
        return cls(data, label)

    def __repr__(self) -> str:
        return f"{self.label}: {self.data}"

    def __reduce__(self) -> tuple:
        # copy, deepcopy and pickle make a new leaf with the same value and label.
        return (_rebuild, (self.data, self.label, self.requires_grad))

    def _repr_html_(self) -> str:
        """Jupyter's view: label, shape, dtype, history, requires_grad, then the value (summarised).

        Example:
            >>> Tensor([1.0, 2.0], "w")._repr_html_()  # doctest: +ELLIPSIS
            '<code>w</code>: Tensor, shape (2,), float64, leaf, requires_grad=True...'
        """
        shape = self.shape
        if not self.requires_grad:
            history = "constant (no history)"
        elif self.is_leaf:
            history = "leaf"
        else:
            history = "made by an op (has history)"
        data = self.data
        value = data if isinstance(data, float) else np.array2string(
            data, threshold=6, edgeitems=2, precision=4)  # a summary, however large
        return (f"<code>{html.escape(self.label)}</code>: Tensor, shape {shape}, "
                f"{self.dtype}, {history}, requires_grad={self.requires_grad}"
                f"<br><code>{html.escape(str(value))}</code>")

    # Arithmetic (+ - * / ** and unary - + abs) is not defined here: it is
    # TensorBase's number slots, so `a * b` is one native call that computes the
    # value, records it and builds the result (Note [Tensor layout], csrc/tensor.hpp).

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate this tensor's gradient into the ``.grad`` of every leaf it depends on.

        As in PyTorch: a non-scalar needs ``gradient`` (an array of its shape);
        what the sweep traversed cannot be traversed again unless
        ``retain_graph=True`` (which defaults to ``create_graph``); ``t.grad =
        None`` resets a leaf's gradient. With ``create_graph=True`` the
        gradients are Tensors with history (accumulated out of place), so
        they can be differentiated again.

        Example:
            >>> w = Tensor(3.0)
            >>> (w * w).backward()
            >>> w.grad.data
            6.0
        """
        retain = create_graph if retain_graph is None else retain_graph
        _core.backward(self, gradient, bool(retain), bool(create_graph))

    def register_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is complete in a sweep.

        ``grad`` is a Tensor; a hook that returns a Tensor, array or number
        replaces the gradient (it must keep the tensor's shape), one that
        returns None leaves it. Hooks run in the order they were added, on
        every backward() and gradient call, and stay until removed.

        Example:
            >>> x = Tensor(3.0)
            >>> handle = x.register_hook(lambda g: g * 10.0)
            >>> (x * x).backward()
            >>> x.grad.data
            60.0
            >>> handle.remove()
        """
        return RemovableHandle(_core.register_hook(self, hook), hook)

    # In-place operators (+= -= *= /=) are TensorBase's number slots too (Note
    # [In-place operators], csrc/tensor.cpp): inside no_grad() they replace the
    # value (graphs recorded earlier keep theirs); with grad mode on, `t += x` is
    # `t = t + x`, except on a leaf that requires grad, where they raise.

    # Comparisons look at values only: plain bools or boolean arrays, nothing
    # recorded. Inside tapegrad.compile's trace each is a guard (the codes are
    # Python's rich comparison ops; Note [Compiled tapes], csrc/replay.hpp).
    def __lt__(self, other: Any) -> Any:
        return _core.compare(self, other, 0)

    def __le__(self, other: Any) -> Any:
        return _core.compare(self, other, 1)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return _core.compare(self, other, 2)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return _core.compare(self, other, 3)

    def __gt__(self, other: Any) -> Any:
        return _core.compare(self, other, 4)

    def __ge__(self, other: Any) -> Any:
        return _core.compare(self, other, 5)

    __hash__ = object.__hash__

    # Plain-value access.
    @property
    def dtype(self) -> np.dtype:
        """float64 for a scalar, else the array's dtype (float32 or float64)."""
        data = _core.peek(self)  # the layout only: no escape while compile traces
        return data.dtype if isinstance(data, np.ndarray) else np.dtype(np.float64)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.size(_core.peek(self)))

    def item(self) -> float:
        """The value of a one-element tensor as a Python float.

        Example:
            >>> Tensor([2.5]).item()
            2.5
        """
        data = self.data
        if isinstance(data, float):
            return data
        if data.size != 1:
            raise ValueError(
                f"item(): the tensor has {data.size} elements (shape {data.shape}); "
                "only a one-element tensor converts to a Python float"
            )
        return float(data.reshape(()))

    def detach(self) -> Tensor:
        """The same value as a constant: no history, ``requires_grad=False``.

        Ops whose inputs are all constants record nothing.

        Example:
            >>> x = Tensor(2.0)
            >>> c = (x * x).detach()
            >>> c.requires_grad, c.data
            (False, 4.0)
        """
        return Tensor(self.data, requires_grad=False)

    # numpy's array methods whose signature differs from their function's;
    # the rest (t.sum(), t.exp(), ...) come from the op catalogue (catalogue.py).
    def transpose(self, *axes: Any) -> Tensor:
        """Permute axes (reversed by default). Example: ``t.transpose(1, 0)``."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _ops.transpose(self, axes or None)

    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed). Example: ``w.T``."""
        return _ops.transpose(self)

    # ndarray.sort and ndarray.partition work in place; a Tensor's values cannot change.
    def sort(self, *args: Any, **kwargs: Any) -> None:
        """Refused: ndarray.sort works in place. ``tapegrad.sort(t)`` returns a sorted Tensor."""
        _refuse_in_place("sort")

    def partition(self, *args: Any, **kwargs: Any) -> None:
        """Refused: ndarray.partition works in place; ``tapegrad.partition(t, kth)`` does not."""
        _refuse_in_place("partition")

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    def numpy(self) -> np.ndarray:
        """The value as an ndarray (a 0-d float64 array for a scalar); nothing is recorded.

        Example:
            >>> Tensor([1, 2]).numpy()
            array([1., 2.])
        """
        return np.asarray(self.data)

    def __float__(self) -> float:
        return self.item()

    # Formatting and rounding read the value, as on a numpy scalar or ndarray;
    # rounding has no gradient, so it gives plain numbers (nothing recorded).
    def _scalar(self, what: str) -> Any:
        """The value of a 0-d tensor as a Python float or numpy scalar; TypeError otherwise."""
        data = self.data
        if isinstance(data, float):
            return data
        if data.ndim == 0:
            return data[()]
        raise TypeError(
            f"{what} of a Tensor of shape {data.shape}: numpy's arrays have none either; "
            f"apply it to the elements, e.g. np.round(t.data) or np.floor(t.data) (plain "
            f"arrays: rounding has no gradient), or to a scalar tensor"
        )

    def __format__(self, spec: str) -> str:
        """``f"{loss:.3f}"`` formats the value; an empty spec gives ``str(t)``.

        Example:
            >>> f"{Tensor(0.123456):.3f}"
            '0.123'
        """
        if not spec:
            return str(self)
        data = self.data
        if isinstance(data, float) or data.ndim == 0:
            return format(self._scalar("format"), spec)
        raise TypeError(
            f"unsupported format string {spec!r} passed to Tensor.__format__: a Tensor of shape "
            f"{data.shape} takes only an empty spec, as numpy's arrays; format its elements "
            "(t.data) or a scalar tensor (t.item())"
        )

    def __round__(self, ndigits: int | None = None) -> Any:
        value = self._scalar("round()")
        return round(value) if ndigits is None else round(value, ndigits)

    def __floor__(self) -> int:
        return math.floor(self._scalar("math.floor()"))

    def __ceil__(self) -> int:
        return math.ceil(self._scalar("math.ceil()"))

    def __trunc__(self) -> int:
        return math.trunc(float(self._scalar("math.trunc()")))  # numpy's float32 has no __trunc__

    def __int__(self) -> int:
        return int(self.item())  # as float(t): any one-element tensor

    def __bool__(self) -> bool:
        return _core.compare(self, None, -1)  # a guard inside compile's trace

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    # numpy interop: ufuncs and functions on Tensors record or refuse, never
    # silently compute on the bare values. `@` and __array_ufunc__ are
    # TensorBase's (Note [numpy dispatch], csrc/numpy_dispatch.cpp).
    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return array_function(func, args, kwargs)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.requires_grad:
            if _core.tracing():
                _ = self.data  # a traced value read by numpy: compile's escape, naming the line
            # Reached by np.array([t0, t1]) and np.asarray(t), also inside library
            # code (scipy's Python functions call np.asarray): numpy's protocols
            # cannot make those record, and the bare value would lose the gradient.
            raise TypeError(
                f"cannot convert tensor '{self.label}' to an ndarray: it requires grad, and "
                "an ndarray would drop its gradient." + (_scipy_advice() or (
                    " To build an array of tensors, use np.stack([t0, t1]) or tapegrad.stack "
                    "(recorded), or tapegrad.array(list); a library function that converts its "
                    "argument with np.asarray cannot be differentiated this way (write it with "
                    "tapegrad's functions, or as a tapegrad.Function).")) +
                " To drop the gradient on purpose: t.detach().numpy()."
            )
        return np.asarray(self.data, dtype=dtype)


class RemovableHandle:
    """What register_hook returns: ``handle.remove()`` takes the hook off again."""

    __slots__ = ("_hook", "_hooks")

    def __init__(self, hooks: list, hook: Any) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        """Take the hook off (doing it twice is harmless)."""
        for i, h in enumerate(self._hooks):
            if h is self._hook:
                del self._hooks[i]
                return


class _ForeignLabel(str):
    """A default label read where its tensor is foreign (another thread's, another Tape's).

    It is the plain text ``tensor_N`` and remembers the tensor, so that a record
    naming it resolves to that tensor (Note [Foreign labels], csrc/tensor.hpp).
    Copied or pickled, it is a plain str.
    """

    tensor: Tensor

    def __reduce__(self) -> tuple:
        return (str, (str(self),))


def _rebuild(data: Any, label: str, requires_grad: bool) -> Tensor:
    return Tensor(data, label, requires_grad=requires_grad)


def _refuse_in_place(name: str) -> None:
    raise TypeError(
        f"Tensor.{name}() is not supported: ndarray.{name} works in place, and a Tensor's "
        f"values cannot change. Use tapegrad.{name}(t) or np.{name}(t), which return a new "
        "Tensor (and record, so the gradient flows back)")


def _scipy_advice() -> str:
    """What to use instead, when scipy's Python code converted a Tensor (with np.asarray).

    The scipy function the user called is the outermost scipy frame on the stack;
    its module's public package (``scipy.special._basic`` -> ``scipy.special``) and
    its name are looked up in ``tapegrad.scipy``.
    """
    try:
        frame, frames = sys._getframe(2), []
    except ValueError:  # called from the bottom of a stack: no library frame to name
        return ""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("scipy."):
            frames.append((module, frame.f_code.co_name))
        elif frames:
            break
        frame = frame.f_back
    if not frames:
        return ""
    parts = frames[-1][0].split(".")
    sub = ".".join([parts[0], *[p for p in parts[1:2] if not p.startswith("_")]])
    ours = sys.modules.get("tapegrad." + sub)
    for _, name in reversed(frames):
        if ours is not None and sub != "scipy" and hasattr(ours, name) and not name.startswith("_"):
            return (f" {sub}.{name} converts its arguments with np.asarray; use "
                    f"tapegrad.{sub}.{name}, which records.")
    name = frames[-1][1]
    if ours is not None and sub != "scipy":
        return (f" {sub}'s Python functions convert their arguments with np.asarray; "
                f"tapegrad.{sub} has: {', '.join(getattr(ours, '__all__', []))}. For {name}, "
                "write it with tapegrad's functions or as a tapegrad.Function (see its docstring).")
    return (f" {sub} ({name}) converts its arguments with np.asarray and cannot record; "
            "tapegrad.scipy has special and stats. Otherwise write the function with tapegrad's "
            "functions or as a tapegrad.Function (see its docstring).")


def install_classes() -> None:
    """Make the native core build op results as :class:`Tensor` and foreign default
    labels as ``_ForeignLabel`` (until then it builds its bare ``TensorBase``).

    tapegrad/__init__.py calls it once.

    Example:
        >>> import tapegrad as tg
        >>> type(tg.Tensor(2.0) * 3.0) is tg.Tensor
        True
    """
    _core.set_tensor_class(Tensor)
    _core.set_foreign_label_class(_ForeignLabel)
