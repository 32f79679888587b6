"""Ops as functions: ``tapegrad.log(t)`` and the like.

Each records when given a Tensor. Given plain numbers or arrays they compute
the value and record nothing (a float or an ndarray comes back).
"""

from __future__ import annotations

from typing import Any

from . import _core

_CODE = _core.OP_CODES
_apply2 = _core.apply_binary


def add(a: Any, b: Any) -> Any:
    """``a + b``. Example: ``tapegrad.add(x, 1.0)``."""
    return _apply2(_CODE["add"], a, b)


def subtract(a: Any, b: Any) -> Any:
    """``a - b``. Example: ``tapegrad.subtract(x, y)``."""
    return _apply2(_CODE["sub"], a, b)


def multiply(a: Any, b: Any) -> Any:
    """``a * b``: the seed's model op, recorded like every other.

    Example:
        >>> import tapegrad as tg
        >>> tg.multiply(tg.Tensor(2.0), tg.Tensor(5.0)).data
        10.0
    """
    return _apply2(_CODE["mul"], a, b)


def divide(a: Any, b: Any) -> Any:
    """``a / b``. Example: ``tapegrad.divide(1.0, x)``."""
    return _apply2(_CODE["div"], a, b)


def power(a: Any, b: Any) -> Any:
    """``a ** b``; either side may be a Tensor. Example: ``tapegrad.power(x, 3)``."""
    return _apply2(_CODE["pow"], a, b)


# The unary ops are the native functions themselves (no Python frame per call),
# generated from the op table in csrc/ops.hpp with their docstrings.
negative = _core.negative
abs = _core.abs
exp = _core.exp
log = _core.log
sqrt = _core.sqrt
sin = _core.sin
cos = _core.cos
tan = _core.tan
tanh = _core.tanh
sigmoid = _core.sigmoid
relu = _core.relu
