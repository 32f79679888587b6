"""The seed design in pure Python: the baseline tapegrad is measured against.

A global list of records, one closure per op, gradients in a dict keyed by
label. It has the same seed surface (``Tensor``, ``OperationRecord``,
``operation_history``, ``clear_history``, ``multiply``, ``compute_gradients``)
and the same elementwise ops as tapegrad, and it keeps the seed's limits on
purpose:

- gradients are keyed by label, so two live tensors with the same label (two
  tensors named ``'x'``, or old tensors after ``clear_history()`` restarted the
  numbering) share one gradient entry and mix;
- ``clear_history()`` forgets records but not tensors: a gradient through a
  cleared record is silently zero instead of an error;
- every record is a Python object holding a closure, so memory and the garbage
  collector's work grow with the graph.

Example:
    >>> from tapegrad import reference as ref
    >>> ref.clear_history()
    >>> x = ref.Tensor.create(2.0, "x")
    >>> y = ref.Tensor.create(5.0, "y")
    >>> f = ref.log(x) + x * y - ref.sin(y)
    >>> ref.compute_gradients(f, [x, y])[0]
    5.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np


class Tensor:
    """A value and a label; operators record onto the global ``operation_history``."""

    _counter = 0

    def __init__(self, data: Any, label: str | None = None) -> None:
        self.data = data if type(data) is float else _as_value(data)  # ops make floats
        self.label = label if label is not None else f"tensor_{Tensor._counter}"
        Tensor._counter += 1

    @classmethod
    def create(cls, data: Any, label: str | None = None) -> Tensor:
        """Same as ``Tensor(data, label)``. Example: ``Tensor.create(2.0, "x")``."""
        return cls(data, label)

    def __repr__(self) -> str:
        return f"{self.label}: {self.data}"

    def __add__(self, other: Any) -> Tensor:
        return add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return divide(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return power(other, self)

    def __neg__(self) -> Tensor:
        return negative(self)

    def __abs__(self) -> Tensor:
        return abs(self)


class OperationRecord:
    """``input_keys``, ``output_keys`` (labels) and ``backward_fn``, as in the seed."""

    def __init__(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        backward_func: Callable[..., Sequence[Any]],
    ) -> None:
        self.input_keys = [_key(k) for k in inputs]
        self.output_keys = [_key(k) for k in outputs]
        self.backward_fn = backward_func


def _key(k: Any) -> str:
    return k.label if isinstance(k, Tensor) else k


operation_history: list[OperationRecord] = []


def clear_history() -> None:
    """Forget every record and restart labels at ``tensor_0``.

    Example: ``clear_history()``.
    """
    operation_history.clear()
    Tensor._counter = 0


def compute_gradients(target: Tensor, sources: Sequence[Tensor], grad_output: Any = None) -> list:
    """Walk the history backwards from ``target``; one gradient per source.

    Example:
        >>> clear_history()
        >>> x = Tensor(3.0, "x")
        >>> compute_gradients(x * x, [x])
        [6.0]
    """
    seed = grad_output if grad_output is not None else np.ones_like(target.data)
    grads: dict[str, Any] = {target.label: _like(seed, target.data)}
    for record in reversed(operation_history):
        keys = record.output_keys
        if len(keys) == 1:  # every built-in op: one dict lookup decides
            g = grads.get(keys[0])
            if g is None:
                continue
            input_grads = record.backward_fn(g)
        elif any(k in grads for k in keys):
            input_grads = record.backward_fn(*[grads.get(k, 0.0) for k in keys])
        else:
            continue
        for key, g in zip(record.input_keys, input_grads):
            if g is not None:
                grads[key] = grads[key] + g if key in grads else g
    return [_like(grads.get(s.label, 0.0), s.data) for s in sources]


# ---- ops: the value, and one closure that returns the input gradients ----


def _as_value(data: Any) -> Any:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    if isinstance(data, bool):
        return float(data)
    array = np.asarray(data)
    if array.dtype.kind in "biu":
        return array.astype(np.float64)
    if array.dtype.kind != "f":
        raise TypeError(f"Tensor: data of dtype {array.dtype} cannot be differentiated")
    return array


def _like(g: Any, value: Any) -> Any:
    """A gradient in its tensor's form: summed over broadcast axes, float for a float."""
    if isinstance(value, float):
        return g if isinstance(g, float) else float(np.sum(g))
    g = np.asarray(g, dtype=value.dtype)
    if g.shape != value.shape:
        while g.ndim > value.ndim:
            g = g.sum(axis=0)
        for axis, size in enumerate(value.shape):
            if size == 1 and g.shape[axis] != 1:
                g = g.sum(axis=axis, keepdims=True)
        g = np.broadcast_to(g, value.shape).copy()
    return g


_new_record = object.__new__


def _record(a: Any, b: Any, value: Any, backward_fn: Callable[[Any], list]) -> Tensor:
    """Append the record of ``out = op(a, b)`` (``b`` is None for a unary op) and return
    ``out``; only Tensor operands are inputs: constants get no gradient."""
    out = Tensor(value)
    record = _new_record(OperationRecord)  # the labels are known: skip __init__'s _key
    if isinstance(a, Tensor):
        record.input_keys = [a.label, b.label] if isinstance(b, Tensor) else [a.label]
    else:
        record.input_keys = [b.label] if isinstance(b, Tensor) else []
    record.output_keys = [out.label]
    record.backward_fn = backward_fn
    operation_history.append(record)
    return out



def _grads(a: Any, ga: Any, b: Any = None, gb: Any = None) -> list:
    """The gradients of the Tensor operands among ``a`` and ``b``, each in its tensor's form
    (the order and the filter of ``_record``'s input keys)."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            return [_like(ga, a.data), _like(gb, b.data)]
        return [_like(ga, a.data)]
    return [_like(gb, b.data)] if isinstance(b, Tensor) else []


def _apply(scalar_fn: Callable[[float], float], array_fn: Any, x: Any) -> Any:
    """``math``'s function on a float (numpy's value where math raises), numpy's on an array."""
    if isinstance(x, float):
        try:
            return scalar_fn(x)
        except (ValueError, OverflowError):  # math raises where numpy gives nan/inf
            with np.errstate(all="ignore"):
                return float(array_fn(x))
    return array_fn(x)


# Each op reads its operands' values directly (``a.data if isinstance(a, Tensor) else a``)
# and makes one closure, as the seed's ``multiply`` does: the reference is the baseline of
# the benchmarks, and a wrapper per op would measure the wrapper rather than the design.


def add(a: Any, b: Any) -> Tensor:
    """``a + b``."""
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b

    def backward_fn(g: Any) -> list:
        return _grads(a, g, b, g)

    return _record(a, b, av + bv, backward_fn)


def subtract(a: Any, b: Any) -> Tensor:
    """``a - b``."""
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b

    def backward_fn(g: Any) -> list:
        return _grads(a, g, b, -g)

    return _record(a, b, av - bv, backward_fn)


def multiply(a: Any, b: Any) -> Tensor:
    """``a * b``: the seed's model op."""
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b

    def backward_fn(g: Any) -> list:
        return _grads(a, g * bv, b, g * av)

    return _record(a, b, av * bv, backward_fn)


def divide(a: Any, b: Any) -> Tensor:
    """``a / b``."""
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b
    out = av / bv

    def backward_fn(g: Any) -> list:
        return _grads(a, g / bv, b, -g * out / bv)

    return _record(a, b, out, backward_fn)


def power(a: Any, b: Any) -> Tensor:
    """``a ** b``; gradients follow PyTorch at a zero base or exponent."""
    av = a.data if isinstance(a, Tensor) else a
    bv = b.data if isinstance(b, Tensor) else b
    out = av**bv

    def backward_fn(g: Any) -> list:
        with np.errstate(all="ignore"):
            da = np.where(bv == 0, 0.0, g * bv * np.power(av, bv - 1.0))
            db = np.where((av == 0) & (bv >= 0), 0.0, g * out * np.log(np.asarray(av, dtype=float)))
        return _grads(a, da, b, db)

    return _record(a, b, out, backward_fn)


def negative(a: Any) -> Tensor:
    """``-a``."""
    av = a.data if isinstance(a, Tensor) else a

    def backward_fn(g: Any) -> list:
        return _grads(a, -g)

    return _record(a, None, -av, backward_fn)


def abs(a: Any) -> Tensor:
    """``|a|``, gradient 0 at 0."""
    av = a.data if isinstance(a, Tensor) else a

    def backward_fn(g: Any) -> list:
        return _grads(a, g * np.sign(av))

    return _record(a, None, np.abs(av) if isinstance(av, np.ndarray) else math.fabs(av),
                   backward_fn)


def exp(a: Any) -> Tensor:
    """``e**a``."""
    out = _apply(math.exp, np.exp, a.data if isinstance(a, Tensor) else a)

    def backward_fn(g: Any) -> list:
        return _grads(a, g * out)

    return _record(a, None, out, backward_fn)


def log(a: Any) -> Tensor:
    """Natural logarithm."""
    av = a.data if isinstance(a, Tensor) else a

    def backward_fn(g: Any) -> list:
        return _grads(a, g / av)

    return _record(a, None, _apply(math.log, np.log, av), backward_fn)


def sqrt(a: Any) -> Tensor:
    """Square root."""
    out = _apply(math.sqrt, np.sqrt, a.data if isinstance(a, Tensor) else a)

    def backward_fn(g: Any) -> list:
        return _grads(a, g / (2 * out))

    return _record(a, None, out, backward_fn)


def sin(a: Any) -> Tensor:
    """Sine."""
    av = a.data if isinstance(a, Tensor) else a

    def backward_fn(g: Any) -> list:
        return _grads(a, g * _apply(math.cos, np.cos, av))

    return _record(a, None, _apply(math.sin, np.sin, av), backward_fn)


def cos(a: Any) -> Tensor:
    """Cosine."""
    av = a.data if isinstance(a, Tensor) else a

    def backward_fn(g: Any) -> list:
        return _grads(a, -g * _apply(math.sin, np.sin, av))

    return _record(a, None, _apply(math.cos, np.cos, av), backward_fn)


def tan(a: Any) -> Tensor:
    """Tangent."""
    out = _apply(math.tan, np.tan, a.data if isinstance(a, Tensor) else a)

    def backward_fn(g: Any) -> list:
        return _grads(a, g * (1 + out * out))

    return _record(a, None, out, backward_fn)


def tanh(a: Any) -> Tensor:
    """Hyperbolic tangent."""
    out = _apply(math.tanh, np.tanh, a.data if isinstance(a, Tensor) else a)

    def backward_fn(g: Any) -> list:
        return _grads(a, g * (1 - out * out))

    return _record(a, None, out, backward_fn)


def sigmoid(a: Any) -> Tensor:
    """Logistic function."""
    av = a.data if isinstance(a, Tensor) else a
    with np.errstate(over="ignore"):
        out = 0.5 * (1.0 + _apply(math.tanh, np.tanh, 0.5 * av))

    def backward_fn(g: Any) -> list:
        return _grads(a, g * out * (1 - out))

    return _record(a, None, out, backward_fn)


def relu(a: Any) -> Tensor:
    """``max(a, 0)``, gradient 0 at 0."""
    av = a.data if isinstance(a, Tensor) else a

    def backward_fn(g: Any) -> list:
        return _grads(a, g * (np.asarray(av) > 0))

    return _record(a, None, np.maximum(av, 0.0) if isinstance(av, np.ndarray) else max(av, 0.0),
                   backward_fn)
