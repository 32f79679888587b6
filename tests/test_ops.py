"""Every op: value and gradient against closed forms, finite differences and PyTorch."""

import numpy as np
import pytest

import tapegrad

from opcatalog import BINARY, TORCH_RTOL, UNARY, torch_op

FLOAT_TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _fn(impl, name):
    if impl is not tapegrad and not hasattr(impl, name):
        pytest.skip(f"tapegrad.reference keeps the seed's ops; {name} is tapegrad's only")
    return getattr(impl, name)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_scalar_closed_form(impl, name, rng):
    forward, derivative, (lo, hi) = UNARY[name]
    for a in rng.uniform(lo, hi, size=5):
        x = impl.Tensor(float(a))
        y = _fn(impl, name)(x)
        assert isinstance(y.data, float)
        assert y.data == pytest.approx(float(forward(a)), rel=1e-12, abs=1e-12)
        (g,) = impl.compute_gradients(y, [x])
        assert g == pytest.approx(float(derivative(a)), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_array_closed_form(impl, name, dtype, rng):
    forward, derivative, (lo, hi) = UNARY[name]
    a = rng.uniform(lo, hi, size=(3, 4)).astype(dtype)
    x = impl.Tensor(a)
    y = _fn(impl, name)(x)
    assert y.data.dtype == dtype and y.data.shape == (3, 4)
    np.testing.assert_allclose(y.data, forward(a), rtol=FLOAT_TOL[dtype])
    v = rng.uniform(0.5, 1.5, size=(3, 4)).astype(dtype)
    (g,) = impl.compute_gradients(y, [x], grad_output=v)
    assert g.dtype == dtype and g.shape == (3, 4)
    np.testing.assert_allclose(g, v * derivative(a), rtol=10 * FLOAT_TOL[dtype], atol=1e-6)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_scalar_closed_form(impl, name, rng):
    forward, (da, db), arange, brange = BINARY[name]
    for a, b in zip(rng.uniform(*arange, size=4), rng.uniform(*brange, size=4)):
        x, y = impl.Tensor(float(a)), impl.Tensor(float(b))
        z = _fn(impl, name)(x, y)
        assert z.data == pytest.approx(float(forward(a, b)), rel=1e-12)
        gx, gy = impl.compute_gradients(z, [x, y])
        assert gx == pytest.approx(float(da(a, b)), rel=1e-10, abs=1e-12)
        assert gy == pytest.approx(float(db(a, b)), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_array_closed_form(impl, name, dtype, rng):
    forward, (da, db), arange, brange = BINARY[name]
    a = rng.uniform(*arange, size=(2, 5)).astype(dtype)
    b = rng.uniform(*brange, size=(2, 5)).astype(dtype)
    x, y = impl.Tensor(a), impl.Tensor(b)
    z = _fn(impl, name)(x, y)
    assert z.data.dtype == (np.float64 if name == "float_power" else dtype)  # numpy's float_power: float64
    np.testing.assert_allclose(z.data, forward(a, b), rtol=FLOAT_TOL[dtype])
    gx, gy = impl.compute_gradients(z, [x, y])
    assert gx.dtype == gy.dtype == dtype
    np.testing.assert_allclose(gx, da(a, b), rtol=20 * FLOAT_TOL[dtype], atol=1e-6)
    np.testing.assert_allclose(gy, db(a, b), rtol=20 * FLOAT_TOL[dtype], atol=1e-6)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_with_constants_on_either_side(impl, name, rng):
    forward, (da, db), arange, brange = BINARY[name]
    a, b = float(rng.uniform(*arange)), float(rng.uniform(*brange))
    arr = rng.uniform(*brange, size=3)
    x = impl.Tensor(a)
    y = impl.Tensor(b)
    # Tensor op number, number op Tensor.
    (g,) = impl.compute_gradients(_fn(impl, name)(x, b), [x])
    assert g == pytest.approx(float(da(a, b)), rel=1e-10, abs=1e-12)
    (g,) = impl.compute_gradients(_fn(impl, name)(a, y), [y])
    assert g == pytest.approx(float(db(a, b)), rel=1e-10, abs=1e-12)
    # A scalar Tensor with a constant ndarray: the gradient is summed back to a float.
    z = _fn(impl, name)(x, arr)
    np.testing.assert_allclose(z.data, forward(a, arr), rtol=1e-12)
    (g,) = impl.compute_gradients(z, [x])
    assert isinstance(g, float)
    assert g == pytest.approx(float(np.sum(da(a, arr))), rel=1e-10)


def test_operators_match_functions(impl):
    x, y = impl.Tensor(1.5), impl.Tensor(0.5)
    pairs = [(x + y, impl.add(x, y)), (x - y, impl.subtract(x, y)), (x * y, impl.multiply(x, y)),
             (x / y, impl.divide(x, y)), (x**y, impl.power(x, y)), (-x, impl.negative(x)),
             (abs(x), impl.abs(x)), (2.0 - x, impl.subtract(2.0, x)), (2.0 / x, impl.divide(2.0, x)),
             (2.0**x, impl.power(2.0, x))]
    for op, fn in pairs:
        assert op.data == fn.data
        assert impl.compute_gradients(op, [x, y]) == impl.compute_gradients(fn, [x, y])


def test_scalar_tensor_with_array_tensor(impl, rng):
    s = impl.Tensor(2.0)
    a = rng.uniform(-1, 1, size=4)
    x = impl.Tensor(a)
    z = impl.tanh(s * x) + s
    gs, gx = impl.compute_gradients(z, [s, x])
    d = 1 - np.tanh(2.0 * a) ** 2
    assert isinstance(gs, float)
    assert gs == pytest.approx(float(np.sum(d * a) + 4), rel=1e-12)
    np.testing.assert_allclose(gx, 2.0 * d, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradcheck(name, rng):
    _, _, (lo, hi) = UNARY[name]
    fn = getattr(tapegrad, name)
    assert tapegrad.gradcheck(fn, [tapegrad.Tensor(rng.uniform(lo, hi, size=(2, 3)))])
    assert tapegrad.gradcheck(lambda t: fn(t) * t, [tapegrad.Tensor(float(rng.uniform(lo, hi)))])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradcheck(name, rng):
    _, _, arange, brange = BINARY[name]
    fn = getattr(tapegrad, name)
    a = tapegrad.Tensor(rng.uniform(*arange, size=4))
    b = tapegrad.Tensor(rng.uniform(*brange, size=4))
    assert tapegrad.gradcheck(fn, [a, b])
    assert tapegrad.gradcheck(lambda s, t: fn(s, t) * s, [tapegrad.Tensor(float(rng.uniform(*arange))), b])


def test_gradcheck_catches_a_wrong_gradient():
    def wrong_square(t):
        out = tapegrad.Tensor(t.data**2)
        tapegrad.operation_history.append(
            tapegrad.OperationRecord([t], [out], lambda g: [3 * t.data * g]))  # should be 2x
        return out

    with pytest.raises(tapegrad.GradcheckError, match="central differences"):
        tapegrad.gradcheck(wrong_square, [tapegrad.Tensor(np.array([1.0, 2.0]))])


def test_ties_and_kinks_follow_pytorch():
    x = tapegrad.Tensor(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(tapegrad.compute_gradients(tapegrad.relu(x), [x])[0], [0, 0, 1])
    np.testing.assert_array_equal(tapegrad.compute_gradients(abs(x), [x])[0], [-1, 0, 1])
    z = tapegrad.Tensor(0.0)
    assert tapegrad.compute_gradients(z**2.0, [z]) == [0.0]
    e = tapegrad.Tensor(2.0)
    assert tapegrad.compute_gradients(0.0**e, [e]) == [0.0]
    assert tapegrad.compute_gradients(z**0.0, [z]) == [0.0]


def test_sigmoid_does_not_overflow():
    x = tapegrad.Tensor(np.array([-800.0, 0.0, 800.0]))
    y = tapegrad.sigmoid(x)
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tapegrad.compute_gradients(y, [x])[0], [0.0, 0.25, 0.0])


def test_float32_with_python_numbers_stays_float32():
    x = tapegrad.Tensor(np.ones(3, dtype=np.float32))
    y = x * 2.5 + 1 - tapegrad.exp(x) / 3.0
    assert y.data.dtype == np.float32
    s = tapegrad.Tensor(2.0)  # a scalar tensor is as weak as a Python float
    assert (x * s).data.dtype == np.float32
    assert tapegrad.compute_gradients(y, [x])[0].dtype == np.float32


def test_mixed_float32_float64_promotes_and_keeps_each_gradient_dtype():
    x = tapegrad.Tensor(np.ones(3, dtype=np.float32))
    w = tapegrad.Tensor(np.full(3, 2.0))
    y = x * w
    assert y.data.dtype == np.float64
    gx, gw = tapegrad.compute_gradients(y, [x, w])
    assert gx.dtype == np.float32 and gw.dtype == np.float64
    np.testing.assert_array_equal(gx, [2, 2, 2])


def test_integer_and_boolean_data_become_float64():
    assert tapegrad.Tensor(np.arange(3)).data.dtype == np.float64
    assert tapegrad.Tensor([True, False]).data.dtype == np.float64
    assert tapegrad.Tensor(3).data == 3.0 and isinstance(tapegrad.Tensor(3).data, float)


# ---- PyTorch as an oracle ----

def _torch_op(torch, name):
    op = torch_op(torch, name)
    if op is None:
        pytest.skip(f"PyTorch has no {name}: checked against closed forms and finite differences")
    return op


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(UNARY) + sorted(BINARY))
def test_against_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    if name in UNARY:
        ranges = [UNARY[name][2]]
    else:
        ranges = [BINARY[name][2], BINARY[name][3]]
    values = [rng.uniform(lo, hi, size=(3, 2)).astype(dtype) for lo, hi in ranges]
    values[0][0, 0] = 0.0 if name in ("abs", "relu", "fabs") else values[0][0, 0]
    ours = [tapegrad.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    ref = _torch_op(torch, name)(*theirs)
    out = getattr(tapegrad, name)(*ours)
    weight = rng.uniform(0.5, 1.5, size=(3, 2)).astype(dtype)
    (ref * torch.tensor(weight)).sum().backward()
    grads = tapegrad.compute_gradients(out, ours, grad_output=weight)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    for g, t in zip(grads, theirs):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=max(10 * tol, TORCH_RTOL.get(name, 0)),
                                   atol=10 * tol)


def test_seed_recipe_against_torch(rng):
    torch = pytest.importorskip("torch")
    values = rng.uniform(0.5, 1.5, size=8)

    def recipe(lib, t):
        x, y, *p = t
        acc = t[0] * 0.0 + 0.5
        for k in range(40):
            acc = acc * 0.999 + lib.log(x) * y - lib.sin(y) + lib.tanh(p[k % 6] * acc) / (1 + lib.exp(-x))
        return acc

    ours = [tapegrad.Tensor(float(v)) for v in values]
    theirs = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in values]
    out = recipe(tapegrad, ours)
    ref = recipe(torch, theirs)
    ref.backward()
    assert out.data == pytest.approx(ref.item(), rel=1e-12)
    for g, t in zip(tapegrad.compute_gradients(out, ours), theirs):
        assert g == pytest.approx(t.grad.item(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(BINARY))
def test_gradcheck_float32(name, rng):
    ranges = [UNARY[name][2]] if name in UNARY else [BINARY[name][2], BINARY[name][3]]
    inputs = [tapegrad.Tensor(rng.uniform(lo, hi, size=3).astype(np.float32)) for lo, hi in ranges]
    # Finite differences in float64, analytic gradients in float32: float32's tolerance.
    assert tapegrad.gradcheck(getattr(tapegrad, name), inputs, eps=1e-4, atol=1e-4, rtol=1e-3)
