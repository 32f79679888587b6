"""Ops as functions: ``tapegrad.log(t)`` and the like.

Each records when given a Tensor. Given plain numbers or arrays they compute
the value and record nothing (a float or an ndarray comes back).
"""

from __future__ import annotations

from typing import Any

from . import _core

_CODE = _core.OP_CODES
_apply1 = _core.apply_unary
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


def negative(a: Any) -> Any:
    """``-a``. Example: ``tapegrad.negative(x)``."""
    return _apply1(_CODE["neg"], a)


def abs(a: Any) -> Any:
    """``|a|``, with gradient 0 at 0. Example: ``tapegrad.abs(x)``."""
    return _apply1(_CODE["abs"], a)


def exp(a: Any) -> Any:
    """``e**a``. Example: ``tapegrad.exp(x)``."""
    return _apply1(_CODE["exp"], a)


def log(a: Any) -> Any:
    """Natural logarithm.

    Example:
        >>> import tapegrad as tg
        >>> tg.log(tg.Tensor(1.0)).data
        0.0
    """
    return _apply1(_CODE["log"], a)


def sqrt(a: Any) -> Any:
    """Square root. Example: ``tapegrad.sqrt(x)``."""
    return _apply1(_CODE["sqrt"], a)


def sin(a: Any) -> Any:
    """Sine. Example: ``tapegrad.sin(x)``."""
    return _apply1(_CODE["sin"], a)


def cos(a: Any) -> Any:
    """Cosine. Example: ``tapegrad.cos(x)``."""
    return _apply1(_CODE["cos"], a)


def tan(a: Any) -> Any:
    """Tangent. Example: ``tapegrad.tan(x)``."""
    return _apply1(_CODE["tan"], a)


def tanh(a: Any) -> Any:
    """Hyperbolic tangent. Example: ``tapegrad.tanh(x)``."""
    return _apply1(_CODE["tanh"], a)


def sigmoid(a: Any) -> Any:
    """Logistic function ``1 / (1 + e**-a)``, computed without overflow.

    Example: ``tapegrad.sigmoid(x)``.
    """
    return _apply1(_CODE["sigmoid"], a)


def relu(a: Any) -> Any:
    """``max(a, 0)``, with gradient 0 at 0. Example: ``tapegrad.relu(x)``."""
    return _apply1(_CODE["relu"], a)
