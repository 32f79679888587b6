"""Elementwise ops as functions: ``tapegrad.log(t)``, ``tapegrad.multiply(a, b)`` and the like.

One native function per entry of the elementwise table (csrc/ops.hpp), named
and documented by its entry (Note [Catalogue] in csrc/catalogue.hpp): there is
no Python frame per call. Each records when given a Tensor; given plain
numbers or arrays it computes the value and records nothing (a float or an
ndarray comes back).

Example:
    >>> import tapegrad as tg
    >>> tg.multiply(tg.Tensor(2.0), tg.Tensor(5.0)).data
    10.0
    >>> tg.log(1.0)
    0.0
"""

from __future__ import annotations

from . import catalogue

globals().update(
    {op.function: catalogue.IMPLEMENTATIONS[op.function]
     for op in catalogue.OPS.values() if op.kind == "elementwise"})
