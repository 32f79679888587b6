"""create_graph=True: gradients with history, differentiated again.

Second and third derivatives against closed forms; every op of both tables
against finite differences of its recorded gradient ("gradgradcheck") and
against PyTorch's double backward; hessian and hvp; Function, hooks and the
errors around them.
"""

import math

import numpy as np
import pytest

import tapegrad as tg

from functions import Cube
from opcatalog import BINARY, TORCH_RTOL, UNARY, torch_op
from test_array_ops import CASES, _inputs


def _weights(shape, rng, dtype=np.float64):
    return np.asarray(rng.uniform(0.5, 1.5, size=shape), dtype=dtype)


def _grad_dot(fn, tensors, u, w):
    """sum_i <w_i, d<u, fn(x)>/dx_i>: a scalar whose gradient is H(u-weighted) applied to w."""
    out = fn(*tensors)
    target = (out * u).sum() if np.ndim(out.data) else out * float(u)
    grads = tg.grad(target, tensors, create_graph=True, allow_unused=True)
    total = None
    for g, wi in zip(grads, w):
        if g is None:
            continue
        term = (g * wi).sum() if np.ndim(g.data) else g * float(wi)
        total = term if total is None else total + term
    return total


def _gradgradcheck(fn, tensors, u, w, **tolerances):
    """Finite differences of the recorded gradient; True when it is constant (linear fn)."""
    total = _grad_dot(fn, tensors, u, w)
    if total is None or not total.requires_grad:
        return True  # fn is (piecewise) linear: PyTorch confirms the zero second derivative below
    return tg.gradcheck(lambda *ts: _grad_dot(fn, list(ts), u, w), tensors, **tolerances)


# ---- closed forms ----

def test_second_and_third_derivative_of_x3_sin_x():
    x = tg.Tensor(0.7)
    y = x ** 3 * tg.sin(x)
    (d1,) = tg.grad(y, x, create_graph=True)
    (d2,) = tg.grad(d1, x, create_graph=True)
    (d3,) = tg.grad(d2, x)
    s, c, v = math.sin(0.7), math.cos(0.7), 0.7
    assert d1.data == pytest.approx(3 * v**2 * s + v**3 * c, rel=1e-12)
    assert d2.data == pytest.approx(6 * v * s + 6 * v**2 * c - v**3 * s, rel=1e-12)
    assert d3.data == pytest.approx(6 * s + 18 * v * c - 9 * v**2 * s - v**3 * c, rel=1e-12)
    assert d1.requires_grad and d2.requires_grad and not d3.requires_grad


def test_higher_derivatives_of_arrays_keep_dtype():
    for dtype in (np.float64, np.float32):
        v = np.array([0.3, -1.2, 2.0], dtype=dtype)
        x = tg.Tensor(v)
        (d1,) = tg.grad(tg.tanh(x).sum(), x, create_graph=True)
        (d2,) = tg.grad(d1.sum(), x)
        t = np.tanh(v.astype(np.float64))
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(d1.data, 1 - t**2, rtol=tol)
        np.testing.assert_allclose(d2.data, -2 * t * (1 - t**2), rtol=tol, atol=tol)
        assert d1.data.dtype == dtype and d2.data.dtype == dtype


def test_backward_create_graph_gives_grad_with_history():
    x = tg.Tensor(1.5)
    (x ** 4).backward(create_graph=True)
    assert x.grad.requires_grad
    assert x.grad.data == pytest.approx(4 * 1.5**3)
    g1 = x.grad
    x.grad = None
    g1.backward()
    assert x.grad.data == pytest.approx(12 * 1.5**2)


def test_backward_create_graph_accumulates_out_of_place():
    x = tg.Tensor(2.0)
    (x * x).backward(create_graph=True)
    first = x.grad
    (x * x * x).backward(create_graph=True)
    assert x.grad is not first and first.data == pytest.approx(4.0)
    assert x.grad.data == pytest.approx(4.0 + 12.0)
    (d2,) = tg.grad(x.grad, x)
    assert d2.data == pytest.approx(2.0 + 12.0)


def test_rosenbrock_hessian():
    def rosenbrock(x):
        return ((1.0 - x[:-1]) ** 2 + 100.0 * (x[1:] - x[:-1] ** 2) ** 2).sum()

    v = np.array([1.0, 2.0, 3.0, -0.5])
    h = tg.hessian(rosenbrock, tg.Tensor(v)).data
    n = len(v)
    want = np.zeros((n, n))
    for i in range(n):
        if i < n - 1:
            want[i, i] += 2 - 400 * (v[i + 1] - v[i] ** 2) + 800 * v[i] ** 2
            want[i, i + 1] = want[i + 1, i] = -400 * v[i]
        if i > 0:
            want[i, i] += 200
    np.testing.assert_allclose(h, want, rtol=1e-12)


def test_quadratic_form_hessian_and_hvp(rng):
    a = rng.normal(size=(4, 4))
    x0 = rng.normal(size=4)
    h = tg.hessian(lambda x: x @ (a @ x), tg.Tensor(x0)).data
    np.testing.assert_allclose(h, a + a.T, rtol=1e-12)
    v = rng.normal(size=4)
    out, hv = tg.hvp(lambda x: x @ (a @ x), tg.Tensor(x0), tg.Tensor(v))
    assert out.data == pytest.approx(x0 @ a @ x0)
    np.testing.assert_allclose(hv.data, (a + a.T) @ v, rtol=1e-12)


def test_hessian_of_several_inputs():
    h = tg.hessian(lambda x, y: x * x * y + tg.sin(y), (tg.Tensor(2.0), tg.Tensor(3.0)))
    np.testing.assert_allclose([[float(b.data) for b in row] for row in h],
                               [[6.0, 4.0], [4.0, -math.sin(3.0)]], rtol=1e-12)


def test_hessian_and_hvp_need_a_scalar_function():
    with pytest.raises(RuntimeError, match="single element"):
        tg.hessian(lambda x: x * x, tg.Tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        tg.hvp(lambda x: (x * x).sum(), tg.Tensor([1.0, 2.0]), np.ones(3))


def test_linear_function_has_zero_hessian():
    h = tg.hessian(lambda x: (x * 3.0).sum(), tg.Tensor([1.0, 2.0]))
    np.testing.assert_array_equal(h.data, np.zeros((2, 2)))


# ---- every op: finite differences of the recorded gradient ----

@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradgradcheck(name, rng):
    _, _, (low, high) = UNARY[name]
    fn = getattr(tg, name)
    x = tg.Tensor(rng.uniform(low, high, size=5))
    if name in ("abs", "relu", "fabs"):  # keep away from the kink
        x = tg.Tensor(np.where(np.abs(x.data) < 0.1, 0.5, x.data))
    u, w = _weights(5, rng), _weights(5, rng)
    assert _gradgradcheck(fn, [x], u, [w])


@pytest.mark.parametrize("name", [*sorted(BINARY), "maximum", "minimum"])
def test_binary_gradgradcheck(name, rng):
    fn = getattr(tg, name)
    low_a, high_a = BINARY[name][2] if name in BINARY else (-2, 2)
    low_b, high_b = BINARY[name][3] if name in BINARY else (-2, 2)
    a = tg.Tensor(rng.uniform(low_a, high_a, size=(3, 4)))
    b = tg.Tensor(rng.uniform(low_b, high_b, size=(4,)))  # broadcast too
    u, w = _weights((3, 4), rng), [_weights((3, 4), rng), _weights(4, rng)]
    assert _gradgradcheck(fn, [a, b], u, w)


def test_scalar_path_gradgradcheck():
    for name in sorted(BINARY):
        fn = getattr(tg, name)
        a, b = tg.Tensor(1.3), tg.Tensor(0.8)
        assert _gradgradcheck(fn, [a, b], 1.0, [0.7, 1.1])


# Second derivatives that are zero almost everywhere or undefined make
# finite differences meaningless where the first derivative jumps.
PIECEWISE = {"max", "min_all", "clip", "where", "where_broadcast", "maximum", "minimum"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_array_op_gradgradcheck(name, rng):
    fn, shapes, _ = CASES[name]
    values = _inputs(name, shapes, rng)
    tensors = [tg.Tensor(v) for v in values]
    out_shape = np.shape(fn(*tensors).data)
    u = _weights(out_shape, rng) if out_shape else 1.0
    w = [_weights(np.shape(v), rng) if np.shape(v) else 1.0 for v in values]
    if name in PIECEWISE:
        assert _grad_dot(fn, tensors, u, w) is not None  # torch checks it below
        return
    assert _gradgradcheck(fn, tensors, u, w, atol=1e-4)


# ---- PyTorch's double backward as the oracle ----

@pytest.mark.parametrize("name", sorted(CASES))
def test_array_op_hessian_vector_product_against_torch(name, rng):
    torch = pytest.importorskip("torch")
    fn, shapes, torch_fn = CASES[name]
    values = _inputs(name, shapes, rng)
    ours = [tg.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    out_shape = np.shape(fn(*ours).data)
    u = _weights(out_shape, rng) if out_shape else np.float64(1.0)
    w = [_weights(np.shape(v), rng) for v in values]
    total = _grad_dot(fn, ours, u, w)
    out = torch_fn(torch, *theirs)
    grads = torch.autograd.grad((out * torch.tensor(u)).sum(), theirs, create_graph=True,
                                allow_unused=True)
    ref_total = sum((g * torch.tensor(wi)).sum() for g, wi in zip(grads, w) if g is not None)
    if total is None or not total.requires_grad:  # a linear op: the second derivative is 0
        assert not getattr(ref_total, "requires_grad", False)
        return
    assert float(total.data) == pytest.approx(float(ref_total.detach()), rel=1e-10, abs=1e-12)
    ref = torch.autograd.grad(ref_total, theirs, allow_unused=True)
    got = tg.grad(total, ours, allow_unused=True)
    for g, r, v in zip(got, ref, values):
        want = np.zeros_like(v) if r is None else r.numpy()
        have = np.zeros_like(v) if g is None else g.data
        np.testing.assert_allclose(have, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", [*sorted(BINARY), "maximum", "minimum"])
def test_binary_hessian_vector_product_against_torch(name, rng):
    torch = pytest.importorskip("torch")
    low_a, high_a = BINARY[name][2] if name in BINARY else (-2, 2)
    low_b, high_b = BINARY[name][3] if name in BINARY else (-2, 2)
    values = [rng.uniform(low_a, high_a, size=(3, 4)), rng.uniform(low_b, high_b, size=4)]
    values[1][0] = values[0][0, 0] if name in ("maximum", "minimum", "fmax", "fmin") else values[1][0]  # a tie
    u, w = _weights((3, 4), rng), [_weights((3, 4), rng), _weights(4, rng)]
    ours = [tg.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    total = _grad_dot(getattr(tg, name), ours, u, w)
    if torch_op(torch, name) is None:
        pytest.skip(f"PyTorch has no {name}")
    out = torch_op(torch, name)(*theirs)
    grads = torch.autograd.grad((out * torch.tensor(u)).sum(), theirs, create_graph=True)
    ref_total = sum((g * torch.tensor(wi)).sum() for g, wi in zip(grads, w))
    rtol = max(1e-9, TORCH_RTOL.get(name, 0))  # (PyTorch's trigamma: absolute errors near 2e-10)
    assert float(total.data) == pytest.approx(float(ref_total.detach()), rel=rtol)
    got = tg.grad(total, ours, allow_unused=True) if total.requires_grad else (None, None)
    ref = (torch.autograd.grad(ref_total, theirs, allow_unused=True) if ref_total.requires_grad
           else (None, None))
    for g, r, v in zip(got, ref, values):
        np.testing.assert_allclose(np.zeros_like(v) if g is None else g.data,
                                   np.zeros_like(v) if r is None else r.numpy(), rtol=rtol,
                                   atol=1e-9 if name in TORCH_RTOL else 1e-12)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_third_derivative_against_torch(name, rng):
    torch = pytest.importorskip("torch")
    _, _, (low, high) = UNARY[name]
    v = rng.uniform(low, high, size=4)
    x = tg.Tensor(v)
    xt = torch.tensor(v, requires_grad=True)
    if torch_op(torch, name) is None:
        pytest.skip(f"PyTorch has no {name}")
    ours, theirs = getattr(tg, name)(x).sum(), torch_op(torch, name)(xt).sum()
    for _ in range(3):
        # Where ours has no history the derivative is constant; torch's next is zero.
        ours = tg.grad(ours, x, create_graph=True)[0] if ours.requires_grad else tg.tensor(v * 0)
        (theirs,) = torch.autograd.grad(theirs, xt, create_graph=True, allow_unused=True)
        want = np.zeros_like(v) if theirs is None else theirs.detach().numpy(force=True)
        np.testing.assert_allclose(ours.data, want, rtol=max(1e-10, TORCH_RTOL.get(name, 0)), atol=1e-12)
        if theirs is None or not theirs.requires_grad:
            return
        ours, theirs = ours.sum(), theirs.sum()


def test_hvp_and_hessian_against_torch(rng):
    torch = pytest.importorskip("torch")
    from torch.autograd import functional as F

    w0, x0 = rng.normal(size=(3, 4)), rng.normal(size=(5, 3))

    def loss(lib, w):
        return lib.log_softmax(lib.tanh(x_of(lib) @ w), -1).sum() if lib is torch else \
            tg.log_softmax(tg.tanh(tg.tensor(x0) @ w), axis=-1).sum()

    def x_of(lib):
        return torch.tensor(x0)

    v = rng.normal(size=(3, 4))
    out, hv = tg.hvp(lambda w: loss(tg, w), tg.Tensor(w0), tg.Tensor(v))
    ref_out, ref_hv = F.hvp(lambda w: loss(torch, w), torch.tensor(w0), torch.tensor(v))
    assert float(out.data) == pytest.approx(float(ref_out), rel=1e-12)
    np.testing.assert_allclose(hv.data, ref_hv.numpy(), rtol=1e-9, atol=1e-12)
    h = tg.hessian(lambda w: loss(tg, w), tg.Tensor(w0))
    ref_h = F.hessian(lambda w: loss(torch, w), torch.tensor(w0))
    np.testing.assert_allclose(h.data, ref_h.numpy(), rtol=1e-9, atol=1e-12)
    j = tg.jacobian(lambda w: tg.tanh(tg.tensor(x0) @ w), tg.Tensor(w0))
    ref_j = F.jacobian(lambda w: torch.tanh(torch.tensor(x0) @ w), torch.tensor(w0))
    np.testing.assert_allclose(j.data, ref_j.numpy(), rtol=1e-12, atol=1e-14)


# ---- Function, OperationRecord, hooks, lifetime ----

def test_function_with_tensor_backward_is_differentiable_twice():
    x = tg.Tensor(1.5)
    y = tg.sin(Cube.apply(x))
    (d1,) = tg.grad(y, x, create_graph=True)
    (d2,) = tg.grad(d1, x)
    c = 1.5**3
    assert d1.data == pytest.approx(math.cos(c) * 3 * 1.5**2)
    assert d2.data == pytest.approx(-math.sin(c) * 9 * 1.5**4 + math.cos(c) * 6 * 1.5)


def test_seed_style_record_refuses_create_graph_clearly():
    tg.clear_history()
    a = tg.Tensor(3.0, "a")
    out = tg.Tensor(a.data ** 2, "out")
    tg.operation_history.append(tg.OperationRecord([a], [out], lambda g: [2 * a.data * g]))
    y = out * 2.0
    with pytest.raises(RuntimeError, match=r"cannot be differentiated again.*tapegrad\.Function"):
        tg.grad(y, a, create_graph=True)
    # First order still works, and the tape is usable.
    assert tg.grad(y, a)[0].data == pytest.approx(12.0)
    b = tg.Tensor(2.0)
    assert tg.grad(b * b * b, b, create_graph=True)[0].data == pytest.approx(12.0)


def test_hook_sees_and_replaces_a_gradient_with_history():
    x = tg.Tensor(2.0)
    y = x * x
    seen = []
    y.register_hook(lambda g: seen.append(g.requires_grad) or g * x)  # makes dL/dy = x
    (d1,) = tg.grad(y * 1.0, x, create_graph=True)  # d1 = x * 2x = 2x^2
    assert seen == [False] and d1.data == pytest.approx(8.0)
    (d2,) = tg.grad(d1, x)
    assert d2.data == pytest.approx(8.0)


def test_grad_outputs_with_history_joins_the_graph():
    x = tg.Tensor(2.0)
    v = tg.Tensor(3.0)
    s = v * v  # a grad_output that depends on v
    (g,) = tg.grad(x * x, x, grad_outputs=s, create_graph=True)
    assert g.data == pytest.approx(2 * 2.0 * 9.0)
    (dv,) = tg.grad(g, v)
    assert dv.data == pytest.approx(2 * 2.0 * 2 * 3.0)


def test_create_graph_without_retain_frees_the_forward_graph():
    x = tg.Tensor(2.0)
    y = tg.exp(x)
    (g,) = tg.grad(y, x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        tg.grad(g, x)
    z = tg.Tensor(1.0)
    assert tg.grad(tg.exp(z), z, create_graph=True)[0].data == pytest.approx(math.e)


def test_create_graph_inside_no_grad_still_records():
    x = tg.Tensor(2.0)
    y = x * x * x
    with tg.no_grad():
        (g,) = tg.grad(y, x, create_graph=True)
        assert not tg.is_grad_enabled()  # restored after the sweep
    assert g.requires_grad
    assert tg.grad(g, x)[0].data == pytest.approx(12.0)


def test_second_order_graphs_are_reclaimed():
    x = tg.Tensor(np.linspace(-1, 1, 50))
    sizes = []
    for _ in range(30):
        (g,) = tg.grad(tg.tanh(x).sum(), x, create_graph=True)
        (h,) = tg.grad(g.sum(), x)
        del g, h
        sizes.append(tg._core.tape_rows())
    assert max(sizes[10:]) <= max(sizes[:10])


def test_helpers_with_create_graph_are_differentiable_again():
    x = tg.Tensor(np.array([0.5, -1.0, 2.0]))
    h = tg.hessian(lambda t: (t ** 4).sum(), x, create_graph=True)
    np.testing.assert_allclose(h.data, np.diag(12 * x.data ** 2))
    (d_trace,) = tg.grad(tg.einsum("ii->", h), x)
    np.testing.assert_allclose(d_trace.data, 24 * x.data)
    j = tg.jacobian(lambda t: t * t, x, create_graph=True)
    np.testing.assert_allclose(tg.grad(j.sum(), x)[0].data, [2.0, 2.0, 2.0])
    _, g = tg.vjp(lambda t: tg.sin(t), x, v=np.ones(3), create_graph=True)
    np.testing.assert_allclose(tg.grad(g.sum(), x)[0].data, -np.sin(x.data))
    _, hv = tg.hvp(lambda t: (t ** 3).sum(), x, np.ones(3), create_graph=True)
    np.testing.assert_allclose(tg.grad(hv.sum(), x)[0].data, [6.0, 6.0, 6.0])


def test_helpers_without_create_graph_leave_the_inputs_alone():
    x = tg.Tensor(np.array([1.0, 2.0]))
    h = tg.hessian(lambda t: (t ** 3).sum(), x)
    assert not h.requires_grad and x.grad is None
    _, hv = tg.hvp(lambda t: t * t * t, tg.Tensor(2.0))  # v may be omitted for one element
    assert hv.data == pytest.approx(12.0) and not hv.requires_grad


def test_strict_helpers_name_the_unused_input():
    with pytest.raises(RuntimeError, match="input 1"):
        tg.vjp(lambda a, b: a * 2.0, (tg.Tensor(1.0), tg.Tensor(2.0)), strict=True)
    with pytest.raises(RuntimeError, match="input 1"):
        tg.jacobian(lambda a, b: a * 2.0, (tg.Tensor(1.0), tg.Tensor(2.0)), strict=True)
    zero = tg.hessian(lambda a, b: a * a, (tg.Tensor(1.0), tg.Tensor(2.0)))
    assert float(zero[1][1].data) == 0.0 and float(zero[0][0].data) == 2.0
