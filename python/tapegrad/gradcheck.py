"""gradcheck and gradgradcheck: tapegrad's derivatives against central finite differences.

Both work the same way. The analytic side is tapegrad's, on fresh leaves made
from the inputs, in the inputs' dtype. The numeric side is central differences
of a float64 evaluation: every perturbed evaluation runs on float64 copies of
the inputs, whatever their dtype, and must give float64 back. Every element of
every input is compared, and the worst mismatch is reported.

float32 inputs make the analytic side float32 while the numeric side stays
float64, so the comparison allows for float32 rounding of the analytic side
(``_tolerances``): for input i, ``atol_i = max(atol, 2**8 * eps32 * scale_i)``
and ``rtol_i = max(rtol, 2**8 * eps32)``, where ``eps32`` is float32's machine
epsilon (2**-23) and ``scale_i`` the largest numeric derivative for input i.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from .autograd import grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """Raised by gradcheck when an analytic gradient disagrees with finite differences."""


# float32's machine epsilon (2**-23), and how many of its units of rounding the analytic
# side of a float32 check may carry: 2**8, about 3.1e-5, so 16 of float32's 24 bits are
# checked. Measured on every op and on small networks (values up to 100, first and second
# derivatives), correct float32 derivatives went beyond the default atol by at most 10
# units of their input's scale; a 1% error is 330 times the allowance. Ill-conditioned
# derivatives go further (var of values near 1000: 600 units) and need a larger atol.
EPS32 = float(np.finfo(np.float32).eps)
FLOAT32_ULPS = 2.0**8


def _leaves(inputs: Sequence[Any]) -> list:
    """Fresh leaves with the inputs' values and dtypes (a Tensor's own history is not used)."""
    return [Tensor(x.data if isinstance(x, Tensor) else x) for x in inputs]


def _float64(leaves: list) -> list:
    return [np.array(t.data, dtype=np.float64) for t in leaves]


def _at(values: list, leaves: list) -> list:
    """Tensors at float64 ``values``: a Python float where the input was one, else float64."""
    return [Tensor(float(x) if isinstance(t.data, float) else x.copy())
            for x, t in zip(values, leaves)]


def _as_float64(value: Any, what: str) -> np.ndarray:
    """``value`` (a float or an array) as float64; anything else in float64 arithmetic raises."""
    if not isinstance(value, float) and np.asarray(value).dtype != np.float64:
        raise TypeError(
            f"{what} is {np.asarray(value).dtype} on float64 inputs, so its central "
            "differences would carry that dtype's rounding; fn must compute in the dtype it "
            "is given")
    return np.asarray(value, dtype=np.float64)


def _central_differences(objective: Callable[[list], float], base: list, eps: float) -> list:
    """d objective / d base[i], element by element, by central differences in float64."""
    numeric = []
    for i, x0 in enumerate(base):
        flat0 = x0.reshape(-1)
        d = np.empty(x0.size)
        for j in range(x0.size):
            values = [b.copy() for b in base]
            flat = values[i].reshape(-1)  # a view: values[i] is a fresh contiguous copy
            flat[j] = flat0[j] + eps
            plus = objective(values)
            flat[j] = flat0[j] - eps
            minus = objective(values)
            d[j] = (plus - minus) / (2 * eps)
        numeric.append(d.reshape(x0.shape))
    return numeric


def _tolerances(float32: bool, numeric: np.ndarray, atol: float, rtol: float) -> tuple:
    """``(atol, rtol)`` for one input's elements: as given, loosened when float32 is involved.

    A float32 analytic derivative carries float32's rounding: a few units of it per
    op, relative to the derivative itself (``rtol``) and relative to the terms it was
    summed from, which cancellation can leave larger than the result (``atol``).
    Those terms are measured by ``scale``, the input's largest numeric derivative:
    from the float64 side, so a wrong analytic value cannot widen its own tolerance.
    """
    if not float32:
        return atol, rtol
    scale = float(np.max(np.abs(numeric))) if numeric.size else 0.0
    if not np.isfinite(scale):
        scale = 0.0  # a non-finite numeric derivative fails the check anyway
    return max(atol, FLOAT32_ULPS * EPS32 * scale), max(rtol, FLOAT32_ULPS * EPS32)


def _compare(name: str, what: str, analytic: list, numeric: list, leaves: list, eps: float,
             atol: float, rtol: float) -> bool:
    """True, or GradcheckError with the worst element (NaN and inf count as the worst)."""
    float32 = any(t.dtype == np.float32 for t in leaves)
    worst = None  # (excess, input index, element, analytic, numeric, atol, rtol)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        got = np.asarray(a, dtype=np.float64)
        if got.shape != n.shape:
            raise GradcheckError(
                f"{name}: the {what} of input {i} has shape {got.shape}, but the input's "
                f"shape is {n.shape}")
        if not n.size:
            continue
        atol_i, rtol_i = _tolerances(float32, n, atol, rtol)
        excess = np.abs(got - n) - (atol_i + rtol_i * np.abs(n))
        # NaN or inf on either side fails, whatever the tolerance.
        bad = np.isnan(excess) | ~np.isfinite(got) | ~np.isfinite(n)
        excess = np.where(bad, np.inf, excess).reshape(-1)
        j = int(np.argmax(excess))
        if excess[j] > 0 and (worst is None or excess[j] > worst[0]):
            worst = (excess[j], i, j, got.reshape(-1)[j], n.reshape(-1)[j], atol_i, rtol_i)
    if worst is None:
        return True
    _, i, j, a, n, atol_i, rtol_i = worst
    shape = numeric[i].shape
    where = f"element {tuple(int(k) for k in np.unravel_index(j, shape))}" if shape else "its value"
    loosened = (f"; float32 inputs: atol={atol_i:.3g}, rtol={rtol_i:.3g}"
                if (atol_i, rtol_i) != (atol, rtol) else "")
    raise GradcheckError(
        f"{name}: the {what} of input {i} at {where} is {float(a)!r}, but central "
        f"differences give {float(n)!r} (eps={eps}, atol={atol}, rtol={rtol}{loosened})")


def _output(fn: Callable[..., Any], tensors: list, name: str) -> Tensor:
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: fn must return a Tensor, got {type(out).__name__}")
    return out


def _weights(rng: np.random.Generator, like: Tensor) -> np.ndarray:
    """Random weights in [0.5, 1.5) of ``like``'s shape, exact in its dtype (kept as float64)."""
    values = rng.uniform(0.5, 1.5, size=np.shape(like.data))
    return values.astype(like.dtype).astype(np.float64)


def _zeros_for(grads: Sequence[Any], leaves: list) -> list:
    """Each gradient's values, with zeros of the input's shape and dtype for None."""
    return [np.zeros(np.shape(t.data), dtype=t.dtype) if g is None
            else (g.data if isinstance(g, Tensor) else g) for g, t in zip(grads, leaves)]


def _gradient(out: Tensor, leaves: list, v: Any, create_graph: bool = False) -> list:
    """d <v, out> / d leaves as Tensors, None where out does not depend on a leaf."""
    if not out.requires_grad:
        return [None] * len(leaves)  # a constant: no history, a zero derivative
    grad_output = v if np.ndim(out.data) else None
    return list(grad(out, leaves, grad_outputs=grad_output, create_graph=create_graph,
                     allow_unused=True))


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s gradients against central differences; True, or GradcheckError.

    ``fn`` maps Tensors to a Tensor; ``inputs`` are Tensors, numbers or arrays,
    and every element of every one is checked (on fresh leaves with the same
    values, whether or not a Tensor requires grad). For a non-scalar output the
    check is on ``sum(v * fn(inputs))`` for a fixed random ``v`` (from ``seed``),
    which tests every input direction at once. An element passes when
    ``|analytic - numeric| <= atol + rtol * |numeric|``; NaN or inf on either
    side fails. The error names the worst element: input, index, both values.

    The finite differences are taken in float64 whatever the inputs' dtype (fn
    runs on float64 copies and must return float64 there); the analytic
    gradients are tapegrad's, in the inputs' dtype.

    float32 inputs: when any input is float32, the analytic side carries
    float32's rounding and the tolerances for input ``i`` become
    ``atol_i = max(atol, 2**8 * eps32 * scale_i)`` and
    ``rtol_i = max(rtol, 2**8 * eps32)``, with ``eps32 = 2**-23`` (float32's
    machine epsilon) and ``scale_i`` the largest numeric gradient element of
    input ``i``. That is 256 units of float32 rounding (about 3.1e-5): relative
    to each element, for the rounding accumulated through the ops, and relative
    to the input's scale, for terms of that size that cancel. Correct float32
    derivatives of every op and of small networks go beyond the default atol
    by at most 10 units; a 1% error is 330 times the allowance. A derivative
    that is a small difference of much larger terms (``var`` of values near
    1000: 600 units) loses more than that to float32: give it a larger
    ``atol``, or check it in float64.

    Example:
        >>> import tapegrad as tg
        >>> tg.gradcheck(lambda x: tg.sin(x) * x, [tg.Tensor([0.5, 1.5])])
        True
    """
    name = "gradcheck"
    leaves = _leaves(inputs)
    out = _output(fn, leaves, name)
    shape = np.shape(out.data)
    v = _weights(np.random.default_rng(seed), out) if shape else 1.0
    analytic = _zeros_for(_gradient(out, leaves, v), leaves)

    def objective(values: list) -> float:
        value = _output(fn, _at(values, leaves), name).data
        return float(np.sum(_as_float64(value, f"{name}: fn's output") * v))

    numeric = _central_differences(objective, _float64(leaves), eps)
    return _compare(name, "gradient", analytic, numeric, leaves, eps, atol, rtol)


def gradgradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    grad_outputs: Any = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s second derivatives, as ``torch.autograd.gradgradcheck``.

    True, or GradcheckError naming the worst element (input, index, analytic,
    numeric). With ``u`` = ``grad_outputs`` (a fixed random array from ``seed``
    for a non-scalar output when not given, 1 for a scalar one) and fixed random
    ``w_i`` of the inputs' shapes, the first derivatives
    ``g_i = d <u, fn(x)> / d x_i`` are taken with ``tapegrad.grad(...,
    create_graph=True)`` and ``s = sum_i <w_i, g_i>`` is differentiated again:
    ``ds / dx_k`` (a Hessian-vector product for a scalar fn) is compared, element
    by element, with central differences of ``s`` computed from first
    derivatives without ``create_graph``. So a backward that is right but not
    differentiable right (one that uses ``.data`` or ``detach()`` for a value
    that depends on the input) fails. An input fn does not use, or one it is
    linear in, has a zero second derivative and passes. The first derivatives
    themselves are not checked here: that is ``gradcheck``.

    Inputs, tolerances and dtypes as ``gradcheck``: finite differences in
    float64 (fn and its first derivatives run on float64 copies), analytic
    second derivatives in the inputs' dtype, and for float32 inputs
    ``atol_i = max(atol, 2**8 * eps32 * scale_i)`` and
    ``rtol_i = max(rtol, 2**8 * eps32)``, with ``scale_i`` the largest numeric
    second-derivative element for input ``i``.

    Example:
        >>> import tapegrad as tg
        >>> tg.gradgradcheck(lambda x: tg.sin(x) * x, [tg.Tensor([0.5, 1.5])])
        True
    """
    name = "gradgradcheck"
    leaves = _leaves(inputs)
    out = _output(fn, leaves, name)
    shape = np.shape(out.data)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        u = _weights(rng, out) if shape else 1.0
    else:
        given = grad_outputs.data if isinstance(grad_outputs, Tensor) else grad_outputs
        if np.shape(given) != shape:
            raise ValueError(f"{name}: grad_outputs has shape {np.shape(given)}, but fn's "
                             f"output has shape {shape}")
        # As the analytic side sees it (in the output's dtype), for the numeric side too.
        u = np.asarray(given, dtype=out.dtype).astype(np.float64)
    w = [_weights(rng, t) for t in leaves]

    def contracted(grads: list) -> Any:
        """sum_i <w_i, g_i> of the first derivatives present, None when there are none."""
        total = None
        for g, wi in zip(grads, w):
            if g is not None:
                # wi in g's dtype (exact: _weights): a float32 derivative stays float32
                term = (g * wi.astype(g.dtype)).sum() if np.ndim(g.data) else g * float(wi)
                total = term if total is None else total + term
        return total

    total = contracted(_gradient(out, leaves, u, create_graph=True))
    if total is None or not total.requires_grad:  # no first derivative depends on the inputs
        analytic = _zeros_for([None] * len(leaves), leaves)
    else:
        analytic = _zeros_for(grad(total, leaves, allow_unused=True), leaves)

    def objective(values: list) -> float:
        tensors = _at(values, leaves)
        grads = _gradient(_output(fn, tensors, name), tensors, u)
        return float(sum(np.sum(_as_float64(g.data, f"{name}: the gradient of fn") * wi)
                         for g, wi in zip(grads, w) if g is not None))

    numeric = _central_differences(objective, _float64(leaves), eps)
    return _compare(name, "second derivative (along w)", analytic, numeric, leaves, eps,
                    atol, rtol)
