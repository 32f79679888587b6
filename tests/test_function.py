"""Custom ops with tapegrad.Function, as torch.autograd.Function."""

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core

from functions import WrongCount


class Softplus(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log1p(np.exp(x.data))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tg.sigmoid(x)


class ScaleAndShift(tg.Function):
    """Two outputs and a non-Tensor argument."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x * scale, x + 1.0

    @staticmethod
    def backward(ctx, g_scaled, g_shifted):
        return g_scaled * ctx.scale + g_shifted, None


def test_function_gradients_match_finite_differences(rng):
    x = tg.Tensor(rng.uniform(-2, 2, size=(3, 4)))
    assert tg.gradcheck(lambda t: Softplus.apply(t) * t, [x])
    y = Softplus.apply(x)
    assert not y.is_leaf and y.requires_grad
    assert any(r.op == "Softplus" for r in tg.operation_history)


def test_function_with_two_outputs_and_a_number(rng):
    a = rng.uniform(size=3)
    x = tg.Tensor(a)
    scaled, shifted = ScaleAndShift.apply(x, 3.0)
    (scaled.sum() + 2.0 * shifted.sum()).backward()
    np.testing.assert_allclose(x.grad.data, np.full(3, 3.0 + 2.0))
    assert scaled.grad is None


def test_function_against_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.uniform(-2, 2, size=5)
    x = tg.Tensor(a)
    (Softplus.apply(x) ** 2).sum().backward()
    t = torch.tensor(a, requires_grad=True)
    (torch.nn.functional.softplus(t) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-12)


def test_function_backward_errors_name_the_function():
    class WrongShape(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            return np.ones(7)

    x = tg.Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"WrongCount\.backward returned 2 gradients for the 1"):
        WrongCount.apply(x).sum().backward()
    with pytest.raises(ValueError, match=r"WrongShape.*shape \(7,\) for input 0, whose shape is \(3,\)"):
        WrongShape.apply(x).sum().backward()
    z = tg.Tensor(2.0)
    (z * z).backward()
    assert z.grad.data == 4.0


def test_function_outside_recording_is_a_constant():
    x = tg.Tensor(1.0)
    with tg.no_grad():
        y = Softplus.apply(x)
    assert not y.requires_grad
    c = Softplus.apply(tg.tensor(1.0))
    assert not c.requires_grad


def test_a_loop_with_functions_stays_flat(rng):
    w = tg.Tensor(rng.uniform(size=8))
    for step in range(500):
        loss = (Softplus.apply(w * 0.5) ** 2).sum()
        loss.backward()
        with tg.no_grad():
            w -= 0.01 * w.grad
        w.grad = None
        if step == 10:
            early = _core.tape_rows()
    assert _core.tape_rows() <= early + 16
