"""gradcheck: compare tapegrad's gradients with central finite differences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from .history import compute_gradients
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """Raised by gradcheck when an analytic gradient disagrees with finite differences."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s gradients against central differences; True, or GradcheckError.

    ``fn`` maps Tensors to a Tensor. For a non-scalar output the check is on
    ``sum(v * fn(inputs))`` for a fixed random ``v``, which tests every input
    direction at once. The finite differences are taken in float64 whatever the
    inputs' dtype; the analytic gradients are tapegrad's, in the inputs' dtype.

    Example:
        >>> import tapegrad as tg
        >>> tg.gradcheck(lambda x: tg.sin(x) * x, [tg.Tensor([0.5, 1.5])])
        True
    """
    tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    shape = np.shape(out.data)
    v = np.random.default_rng(seed).uniform(0.5, 1.5, size=shape) if shape else 1.0
    analytic = compute_gradients(out, tensors, grad_output=v if shape else None)

    base = [np.array(t.data, dtype=np.float64) for t in tensors]

    def objective(values: list) -> float:
        args = [Tensor(float(x) if np.ndim(x) == 0 and isinstance(t.data, float) else x)
                for x, t in zip(values, tensors)]
        return float(np.sum(np.asarray(fn(*args).data, dtype=np.float64) * v))

    worst = None  # (excess, input index, element, analytic, numeric)
    for i, x0 in enumerate(base):
        got = np.asarray(analytic[i], dtype=np.float64).reshape(-1)
        for j in range(x0.size):
            values = [b.copy() for b in base]
            flat = values[i].reshape(-1)
            flat[j] = x0.reshape(-1)[j] + eps
            plus = objective(values)
            flat[j] = x0.reshape(-1)[j] - eps
            minus = objective(values)
            numeric = (plus - minus) / (2 * eps)
            excess = abs(got[j] - numeric) - (atol + rtol * abs(numeric))
            if not excess <= 0 and (worst is None or excess > worst[0] or np.isnan(excess)):
                worst = (excess, i, j, got[j], numeric)
    if worst is not None:
        _, i, j, a, n = worst
        where = f"element {np.unravel_index(j, base[i].shape)}" if base[i].ndim else "its value"
        raise GradcheckError(
            f"gradcheck: the gradient of input {i} at {where} is {a!r}, but central "
            f"differences give {n!r} (eps={eps}, atol={atol}, rtol={rtol})"
        )
    return True
