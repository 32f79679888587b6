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
        self.data = _as_value(data)
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
        if not any(k in grads for k in record.output_keys):
            continue
        output_grads = [grads.get(k, 0.0) for k in record.output_keys]
        for key, g in zip(record.input_keys, record.backward_fn(*output_grads)):
            if g is not None:
                grads[key] = grads[key] + g if key in grads else g
    return [_like(grads.get(s.label, 0.0), s.data) for s in sources]


# ---- ops: value and vector-Jacobian product side by side ----


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


def _record(operands: tuple, value: Any, vjp: Callable[[Any], tuple]) -> Tensor:
    """Append the record of ``out = op(*operands)``; constants get no gradient."""
    out = Tensor(value)
    record = OperationRecord.__new__(OperationRecord)  # keys are known labels: skip _key
    if len(operands) == 2 and isinstance(operands[0], Tensor) and isinstance(operands[1], Tensor):
        a, b = operands
        record.input_keys = [a.label, b.label]

        def backward_fn(g: Any) -> list:
            ga, gb = vjp(g)
            return [_like(ga, a.data), _like(gb, b.data)]
    else:
        tensors = [i for i, x in enumerate(operands) if isinstance(x, Tensor)]
        record.input_keys = [operands[i].label for i in tensors]

        def backward_fn(g: Any) -> list:
            grads = vjp(g)
            return [_like(grads[i], operands[i].data) for i in tensors]

    record.output_keys = [out.label]
    record.backward_fn = backward_fn
    operation_history.append(record)
    return out


def _v(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _elementwise(scalar_fn: Callable[[float], float], array_fn: Any) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        if isinstance(x, float):
            try:
                return scalar_fn(x)
            except (ValueError, OverflowError):  # math raises where numpy gives nan/inf
                with np.errstate(all="ignore"):
                    return float(array_fn(x))
        return array_fn(x)

    return apply


_exp = _elementwise(math.exp, np.exp)
_log = _elementwise(math.log, np.log)
_sqrt = _elementwise(math.sqrt, np.sqrt)
_sin = _elementwise(math.sin, np.sin)
_cos = _elementwise(math.cos, np.cos)
_tan = _elementwise(math.tan, np.tan)
_tanh = _elementwise(math.tanh, np.tanh)


def add(a: Any, b: Any) -> Tensor:
    """``a + b``."""
    return _record((a, b), _v(a) + _v(b), lambda g: (g, g))


def subtract(a: Any, b: Any) -> Tensor:
    """``a - b``."""
    return _record((a, b), _v(a) - _v(b), lambda g: (g, -g))


def multiply(a: Any, b: Any) -> Tensor:
    """``a * b``: the seed's model op."""
    av, bv = _v(a), _v(b)
    return _record((a, b), av * bv, lambda g: (g * bv, g * av))


def divide(a: Any, b: Any) -> Tensor:
    """``a / b``."""
    av, bv = _v(a), _v(b)
    out = av / bv
    return _record((a, b), out, lambda g: (g / bv, -g * out / bv))


def power(a: Any, b: Any) -> Tensor:
    """``a ** b``; gradients follow PyTorch at a zero base or exponent."""
    av, bv = _v(a), _v(b)
    out = av**bv

    def vjp(g: Any) -> tuple:
        with np.errstate(all="ignore"):
            da = np.where(bv == 0, 0.0, g * bv * np.power(av, bv - 1.0))
            db = np.where((av == 0) & (bv >= 0), 0.0, g * out * np.log(np.asarray(av, dtype=float)))
        return da, db

    return _record((a, b), out, vjp)


def negative(a: Any) -> Tensor:
    """``-a``."""
    return _record((a,), -_v(a), lambda g: (-g,))


def abs(a: Any) -> Tensor:
    """``|a|``, gradient 0 at 0."""
    av = _v(a)
    return _record((a,), np.abs(av) if isinstance(av, np.ndarray) else math.fabs(av),
                   lambda g: (g * np.sign(av),))


def exp(a: Any) -> Tensor:
    """``e**a``."""
    out = _exp(_v(a))
    return _record((a,), out, lambda g: (g * out,))


def log(a: Any) -> Tensor:
    """Natural logarithm."""
    av = _v(a)
    return _record((a,), _log(av), lambda g: (g / av,))


def sqrt(a: Any) -> Tensor:
    """Square root."""
    out = _sqrt(_v(a))
    return _record((a,), out, lambda g: (g / (2 * out),))


def sin(a: Any) -> Tensor:
    """Sine."""
    av = _v(a)
    return _record((a,), _sin(av), lambda g: (g * _cos(av),))


def cos(a: Any) -> Tensor:
    """Cosine."""
    av = _v(a)
    return _record((a,), _cos(av), lambda g: (-g * _sin(av),))


def tan(a: Any) -> Tensor:
    """Tangent."""
    out = _tan(_v(a))
    return _record((a,), out, lambda g: (g * (1 + out * out),))


def tanh(a: Any) -> Tensor:
    """Hyperbolic tangent."""
    out = _tanh(_v(a))
    return _record((a,), out, lambda g: (g * (1 - out * out),))


def sigmoid(a: Any) -> Tensor:
    """Logistic function."""
    av = _v(a)
    with np.errstate(over="ignore"):
        out = 0.5 * (1.0 + _tanh(0.5 * av))
    return _record((a,), out, lambda g: (g * out * (1 - out),))


def relu(a: Any) -> Tensor:
    """``max(a, 0)``, gradient 0 at 0."""
    av = _v(a)
    out = np.maximum(av, 0.0) if isinstance(av, np.ndarray) else max(av, 0.0)
    return _record((a,), out, lambda g: (g * (np.asarray(av) > 0),))
