"""``scipy.signal`` on Tensors: ``convolve``.

scipy's own function calls ``np.asarray`` on its arguments, so it cannot see a
Tensor; this one has its signature and records. The convolution is the native
``convolve`` op (csrc/array_ops.hpp ``Convolve``), computed by scipy's function
with the method asked for, and so is its backward.

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> from tapegrad.scipy.signal import convolve
    >>> image = tg.Tensor(np.arange(9.0).reshape(3, 3))
    >>> convolve(image, np.ones((2, 2)) / 4, mode="valid").data
    array([[2., 3.],
           [5., 6.]])
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._args import shape_of
from ..catalogue import composite
from ..products import centered, convolution

__all__ = ["convolve"]


@composite(doc="scipy.signal.convolve: the N-D convolution of two arrays of the same rank.",
           arity=2)
def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> Any:
    """As scipy's: ``mode`` 'full' (each axis N + M - 1 long), 'valid' (where one
    input lies wholly inside the other: one must be at least as long as the
    other along every axis) or 'same' (in1's shape, centred on 'full');
    ``method`` 'auto', 'direct' or 'fft', for the forward and the backward
    alike.

    Example:
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.signal import convolve
        >>> convolve(tg.Tensor([1.0, 2.0, 3.0]), tg.Tensor([1.0, 1.0]), mode="same").data
        array([1., 3., 5.])
    """
    s1, s2 = shape_of(in1), shape_of(in2)
    if len(s1) != len(s2):
        raise ValueError(f"scipy.signal.convolve: in1 {s1} and in2 {s2} should have the same "
                         "dimensionality")
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"scipy.signal.convolve: mode must be 'full', 'same' or 'valid', "
                         f"got {mode!r}")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"scipy.signal.convolve: method must be 'auto', 'direct' or 'fft', "
                         f"got {method!r}")
    if not s1:
        return _core.multiply(in1, in2)
    if mode == "same":
        return centered(convolution(in1, in2, "full", method), s1)
    return convolution(in1, in2, mode, method)
