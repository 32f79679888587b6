"""The functional form HIPS autograd and JAX users write: ``value_and_grad(f)(x)``.

Arguments and gradients are plain values (floats, ndarrays and nested lists,
tuples and dicts of them), so the result plugs into code that knows nothing of
Tensors, such as ``scipy.optimize.minimize(value_and_grad(f), x0, jac=True)``.
It lives apart from autograd.py, which holds the Tensor-level API (grad,
Function, Tape, the torch.autograd.functional helpers): this is the layer that
turns plain nested values into Tensors and back.
"""

from __future__ import annotations

import functools
import numbers
import operator
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from .autograd import grad
from .tensor import Tensor

__all__ = ["value_and_grad"]

_FLOATS = (np.float32, np.float64)


def differentiable_value(value: Any, where: str, what: str = "value_and_grad") -> Any:
    """One argument value to differentiate, as a float or a float32/float64 ndarray (integers
    become float64); TypeError, naming `what` and `where`, for anything else. compile's too."""
    if isinstance(value, Tensor):
        value = _core.peek(value)  # its value, read for a new leaf
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: {where} is a bool, which has no gradient; pass it "
                        "outside argnums")
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        array = np.asarray(value)
        if array.dtype not in _FLOATS and not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{what}: {where} has dtype {array.dtype}; give float32 "
                            "or float64 values (integers become float64)")
        return array if array.dtype in _FLOATS else array.astype(np.float64)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(
        f"{what}: {where} is a {type(value).__name__}; arguments to differentiate are "
        "floats, ndarrays, Tensors, or lists, tuples and dicts of them")


def _leaf(value: Any, where: str) -> Tensor:
    """A leaf that requires grad for one argument value, in its dtype."""
    return Tensor(differentiable_value(value, where))


def _flatten(value: Any, where: str, leaves: list) -> Any:
    """value with each leaf replaced by a Tensor (appended to leaves): the structure kept."""
    if isinstance(value, dict):
        return {k: _flatten(v, f"{where}[{k!r}]", leaves) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, f"{where}[{i}]", leaves) for i, v in enumerate(value)]
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    leaf = _leaf(value, where)
    leaves.append(leaf)
    return leaf


def _plain(leaf: Tensor, g: Tensor | None) -> Any:
    """A gradient as a plain value of its input's kind: a float, or an ndarray of its dtype."""
    if g is None:  # the value does not depend on this input
        return 0.0 if isinstance(leaf.data, float) else np.zeros_like(leaf.data)
    data = g.data
    if isinstance(leaf.data, float):
        return float(data)
    return np.array(data, dtype=leaf.data.dtype)  # a writable copy the caller owns


def _unflatten(structure: Any, grads: dict) -> Any:
    if isinstance(structure, Tensor):
        return grads[id(structure)]
    if isinstance(structure, dict):
        return {k: _unflatten(v, grads) for k, v in structure.items()}
    if isinstance(structure, list):
        return [_unflatten(v, grads) for v in structure]
    items = [_unflatten(v, grads) for v in structure]
    return type(structure)(*items) if hasattr(structure, "_fields") else tuple(items)


def _plain_value(value: Any) -> Any:
    data = value.data if isinstance(value, Tensor) else value
    if isinstance(data, np.ndarray) and data.ndim == 0:
        return float(data)
    return float(data) if isinstance(data, numbers.Real) else np.array(data)


def value_and_grad(f: Callable[..., Any], argnums: int | tuple[int, ...] = 0
                   ) -> Callable[..., tuple[Any, Any]]:
    """A function that returns ``(f(*args), gradient of f with respect to args[argnums])``.

    As HIPS autograd's and JAX's ``value_and_grad``: ``f`` takes plain values
    (floats, ndarrays, or nested lists, tuples and dicts of them) in the
    arguments ``argnums`` names, computes with tapegrad or numpy functions on
    them, and returns a scalar (a Tensor of one element). The value comes back
    as a plain float, the gradient in the structure of its argument, as plain
    floats and ndarrays in each input's dtype (integers count as float64). With
    a tuple ``argnums`` the gradients are a tuple, one per argument. Other
    arguments (and keywords) are passed to ``f`` as they are. A value that does
    not depend on the arguments has zero gradients (with a warning).

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> def f(w, x):
        ...     return np.sum((x @ w - 1.0) ** 2)
        >>> value, g = tg.value_and_grad(f)(np.array([1.0, 2.0]), np.eye(2))
        >>> value, g
        (1.0, array([0., 2.]))

        ``scipy.optimize.minimize(tg.value_and_grad(f), w0, args=(x,), jac=True)``
        minimises f with its exact gradient.
    """
    single = not isinstance(argnums, (tuple, list))
    nums = (operator.index(argnums),) if single else tuple(operator.index(a) for a in argnums)
    if not nums:
        raise ValueError("value_and_grad: argnums is empty; name the arguments to differentiate")
    if len(set(nums)) != len(nums):
        raise ValueError(f"value_and_grad: argnums {tuple(nums)} repeats an argument")

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        positions = []
        for n in nums:
            if not -len(args) <= n < len(args):
                raise ValueError(f"value_and_grad: argnums names argument {n}, but "
                                 f"{getattr(f, '__name__', 'f')} was called with {len(args)} "
                                 "positional arguments")
            positions.append(n % len(args))
        args_list = list(args)
        leaves: list[Tensor] = []
        structures = []
        for n in positions:
            structures.append(_flatten(args[n], f"argument {n}", leaves))
            args_list[n] = structures[-1]
        out = f(*args_list, **kwargs)
        if isinstance(out, Tensor):
            if np.size(out.data) != 1:
                raise TypeError(
                    f"value_and_grad: {getattr(f, '__name__', 'f')} must return a scalar (a "
                    f"Tensor of one element), got shape {out.shape}: grad can be implicitly "
                    "created only for scalar outputs. Reduce it (e.g. tapegrad.sum), or use "
                    "tapegrad.vjp or tapegrad.jacobian for a non-scalar function")
            grads = grad(out, leaves, allow_unused=True) if out.requires_grad else [None] * len(
                leaves)
        elif isinstance(out, numbers.Real) or (isinstance(out, np.ndarray) and out.size == 1):
            grads = [None] * len(leaves)
        else:
            got = f"a {type(out).__name__}" + (f" of shape {out.shape}" if hasattr(out, "shape")
                                               else "")
            raise TypeError(f"value_and_grad: {getattr(f, '__name__', 'f')} must return a "
                            f"scalar (a Tensor of one element), got {got}")
        if leaves and all(g is None for g in grads):
            warnings.warn(
                f"value_and_grad: the value of {getattr(f, '__name__', 'f')} does not depend on "
                "the arguments it differentiates (it has no recorded history from them: was "
                ".data, float() or a plain numpy copy used on the way?); their gradients are "
                "zero", stacklevel=2)
        plain = {id(leaf): _plain(leaf, g) for leaf, g in zip(leaves, grads)}
        results = tuple(_unflatten(s, plain) for s in structures)
        return _plain_value(out), results[0] if single else results

    return value_and_grad_f
