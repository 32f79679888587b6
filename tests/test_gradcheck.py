"""gradcheck and gradgradcheck: what they accept, what they catch, and float32.

Each check is run on correct functions (it must pass) and on deliberately wrong
ones (it must raise GradcheckError, naming the input and element): a backward
right to first order but not to second, NaN on either side, a wrong value
where the true gradient is zero, and float32 gradients off by 1%.
"""

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.gradcheck import EPS32, FLOAT32_ULPS

from functions import Cube
from opcatalog import BINARY, UNARY
from test_array_ops import CASES, _inputs

# The float32 allowance (2**8 units of float32's epsilon), as the docstrings state it.
ALLOWANCE = 2.0**8 * 2.0**-23


class Softplus(tg.Function):
    """log(1 + e^x), with a backward in Tensor ops: differentiable again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log1p(np.exp(x.data))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tg.sigmoid(x)


class DetachedCube(tg.Function):
    """x**3 whose backward detaches x: right to first order, wrong to second."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3.0 * x.detach() * x.detach() * g


class DataCube(tg.Function):
    """x**3 whose backward uses x.data: right to first order, wrong to second."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3.0 * x.data**2 * g


class CubeSecondOff(tg.Function):
    """x**3 whose backward has the right value, 3 x^2 g, but the derivative 6.06 x g (1% off)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3.0 * (1.02 * x - 0.02 * x.detach()) * x * g


def scaled_sin(factor):
    """sin whose backward is ``factor`` times cos: a gradient off by factor - 1."""

    class ScaledSin(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return tg.sin(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return factor * tg.cos(x) * g

    return ScaledSin


# ---- gradgradcheck: correct functions pass ----

GOOD = {
    "scalar_sin_x": (lambda x: tg.sin(x) * x, lambda rng: [1.3]),
    "scalar_x3_sin": (lambda x: x**3 * tg.sin(x), lambda rng: [tg.Tensor(0.7)]),
    "tanh": (tg.tanh, lambda rng: [rng.uniform(-2, 2, size=(2, 3))]),
    "exp_times_x": (lambda x: tg.exp(x) * x, lambda rng: [rng.uniform(-1, 1, size=4)]),
    "sum_of_squares": (lambda x: (x * x).sum(), lambda rng: [rng.uniform(-1, 1, size=(3, 2))]),
    "mean_of_cubes": (lambda x: (x**3).mean(axis=0), lambda rng: [rng.uniform(-1, 1, (3, 4))]),
    "var": (lambda x: tg.var(x, axis=1), lambda rng: [rng.uniform(-1, 1, size=(2, 5))]),
    "softmax": (lambda x: tg.softmax(x), lambda rng: [rng.uniform(-2, 2, size=(3, 4))]),
    "logsumexp": (lambda x: tg.logsumexp(x, axis=-1), lambda rng: [rng.uniform(-2, 2, (3, 4))]),
    "log_softmax": (lambda x: tg.log_softmax(x), lambda rng: [rng.uniform(-2, 2, (2, 5))]),
    "prod": (lambda x: x.prod(axis=0), lambda rng: [rng.uniform(0.5, 1.5, size=(3, 2))]),
    "matmul": (lambda a, b: tg.tanh(a @ b),
               lambda rng: [rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (4, 2))]),
    "mlp": (lambda x, w, b: tg.log_softmax(tg.tanh(x @ w + b)).sum(),
            lambda rng: [rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (3, 2)),
                         rng.uniform(-1, 1, 2)]),
    "broadcast_divide": (lambda a, b: a / b,
                         lambda rng: [rng.uniform(-1, 1, (2, 3)), rng.uniform(0.5, 2, 3)]),
    "scalar_and_array": (lambda s, x: tg.sin(s * x) * s,
                         lambda rng: [0.8, rng.uniform(-1, 1, 3)]),
    "function_cube": (Cube.apply, lambda rng: [rng.uniform(-2, 2, size=4)]),
    "function_softplus": (lambda x: Softplus.apply(x) * x, lambda rng: [rng.uniform(-2, 2, 5)]),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_gradgradcheck_passes_correct_functions(name, rng):
    fn, make = GOOD[name]
    inputs = make(rng)
    assert tg.gradgradcheck(fn, inputs)
    assert tg.gradcheck(fn, inputs)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_gradgradcheck_binary_ops(name, rng):
    _, _, a_range, b_range = BINARY[name]
    a, b = rng.uniform(*a_range, size=(2, 3)), rng.uniform(*b_range, size=3)
    assert tg.gradgradcheck(getattr(tg, name), [a, b])
    assert tg.gradgradcheck(getattr(tg, name), [float(a[0, 0]), float(b[0])])


def test_gradgradcheck_input_kinds_and_grad_outputs(rng):
    x = rng.uniform(-1, 1, size=3)
    fn = lambda a, b, c, d: tg.sin(a * b) * c + d * d  # noqa: E731
    history = tg.Tensor(x) * 2.0  # a non-leaf Tensor: its values are checked
    inputs = [0.5, x, [1.0, 2.0, 3.0], tg.Tensor(x, requires_grad=False)]
    assert tg.gradgradcheck(fn, inputs)
    assert tg.gradgradcheck(fn, [tg.Tensor(0.5), history, x, x],
                            grad_outputs=tg.Tensor(np.array([1.0, -2.0, 0.5])))
    assert tg.gradgradcheck(fn, inputs, grad_outputs=np.array([3.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match=r"grad_outputs has shape \(2,\).*\(3,\)"):
        tg.gradgradcheck(fn, inputs, grad_outputs=np.ones(2))
    with pytest.raises(TypeError, match="must return a Tensor"):
        tg.gradgradcheck(lambda t: 1.0, [x])


def test_inputs_are_left_alone(rng):
    x = tg.Tensor(rng.uniform(-1, 1, size=3))
    before = x.data.copy()
    assert tg.gradgradcheck(lambda t: tg.tanh(t), [x])
    assert tg.gradcheck(lambda t: tg.tanh(t), [x])
    assert x.grad is None
    np.testing.assert_array_equal(x.data, before)


def test_unused_and_linear_inputs_have_a_zero_second_derivative(rng):
    x, y = rng.uniform(-1, 1, size=3), rng.uniform(-1, 1, size=2)
    assert tg.gradgradcheck(lambda a, b: a * a, [x, y])  # b unused
    assert tg.gradgradcheck(lambda a, b: (a * 3.0).sum() + b, [x, 0.5])  # all linear
    assert tg.gradgradcheck(lambda a: a, [x])  # the identity
    assert tg.gradgradcheck(lambda a: tg.Tensor(2.0), [x])  # a constant
    assert tg.gradgradcheck(lambda a: tg.tensor(2.0) * 3.0, [x])  # one without grad
    assert tg.gradcheck(lambda a, b: a * a, [x, y])
    assert tg.gradcheck(lambda a: tg.Tensor(2.0), [x])
    assert tg.gradcheck(lambda a: tg.tensor(2.0) * 3.0, [x])


# ---- what they catch ----

@pytest.mark.parametrize("wrong", [DetachedCube, DataCube])
def test_gradgradcheck_catches_a_backward_that_is_not_differentiable(wrong):
    x = np.array([0.1, -0.2, 3.0])  # the missing 6 x g term is largest at element 2
    assert tg.gradcheck(wrong.apply, [x])  # right to first order
    with pytest.raises(tg.GradcheckError,
                       match=r"gradgradcheck: the second derivative .* of input 0 at element "
                             r"\(2,\) is 0\.0, but central differences give \d+\.\d+"):
        tg.gradgradcheck(wrong.apply, [x])
    with pytest.raises(tg.GradcheckError, match=r"of input 1 at element \(0, 2\)"):
        tg.gradgradcheck(lambda a, b: a * 2.0 + wrong.apply(b), [x, x.reshape(1, 3)])
    with pytest.raises(tg.GradcheckError, match="input 0 at its value"):
        tg.gradgradcheck(wrong.apply, [1.5])


def test_gradgradcheck_catches_a_second_derivative_off_by_one_percent():
    x = np.array([0.1, -0.2, 3.0])
    assert tg.gradcheck(CubeSecondOff.apply, [x])
    with pytest.raises(tg.GradcheckError, match=r"input 0 at element \(2,\)"):
        tg.gradgradcheck(CubeSecondOff.apply, [x])
    with pytest.raises(tg.GradcheckError, match=r"input 0 at element \(2,\)"):
        tg.gradgradcheck(CubeSecondOff.apply, [x.astype(np.float32)])


def test_a_plain_backward_cannot_be_differentiated_again():
    def seed_style(t):
        out = tg.Tensor(t.data**2)
        tg.operation_history.append(tg.OperationRecord([t], [out], lambda g: [2 * t.data * g]))
        return out

    assert tg.gradcheck(seed_style, [np.array([1.0, 2.0])])
    with pytest.raises(RuntimeError, match="cannot be differentiated again"):
        tg.gradgradcheck(seed_style, [np.array([1.0, 2.0])])


def nan_at_first(x_values):
    class NanGrad(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return tg.Tensor(np.where(np.arange(x_values.size) == 0, np.nan, 2 * x_values)) * g

    return NanGrad


def test_nan_on_either_side_fails():
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(tg.GradcheckError, match=r"input 0 at element \(0,\) is nan"):
        tg.gradcheck(nan_at_first(x).apply, [x])
    with pytest.raises(tg.GradcheckError, match=r"input 0 at element \(0,\) is nan"):
        tg.gradcheck(nan_at_first(x).apply, [x.astype(np.float32)])

@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning",
                            "ignore:divide by zero:RuntimeWarning")
def test_nan_and_inf_from_the_function_fail():
    # sqrt at 0: the analytic gradient is inf and central differences see sqrt(-eps).
    with pytest.raises(tg.GradcheckError, match=r"element \(1,\) is inf.*give nan"):
        tg.gradcheck(tg.sqrt, [np.array([1.0, 0.0])])
    # Element 1's NaN is in every difference of the contracted gradient.
    with pytest.raises(tg.GradcheckError, match=r"gradgradcheck: .* element \(0,\) .* give nan"):
        tg.gradgradcheck(tg.sqrt, [np.array([1.0, 0.0])])
    # log of a negative number: a finite analytic gradient, NaN values.
    with pytest.raises(tg.GradcheckError, match=r"element \(0,\) is -\d\.\d+, but .* give nan"):
        tg.gradcheck(tg.log, [np.array([-1.0, 2.0])])


def zero_gradient_wrong(x_values, offset):
    """x**2, with ``offset`` added to the gradient where x is 0 (where it should be 0)."""

    class Wrong(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return tg.Tensor(2 * x_values + np.where(x_values == 0, offset, 0.0)) * g

    return Wrong


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_wrong_value_where_the_gradient_is_zero_fails(dtype):
    x = np.array([0.7, 0.0, -1.1], dtype=dtype)
    assert tg.gradcheck(zero_gradient_wrong(x, 0.0).apply, [x])
    with pytest.raises(tg.GradcheckError,
                       match=r"input 0 at element \(1,\) is 0\.000\d+, but central differences "
                             r"give 0\.0"):
        tg.gradcheck(zero_gradient_wrong(x, 1e-3).apply, [x])


def test_a_gradient_missing_at_one_element_fails():
    class Partial(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2.0 * x * g * np.array([1.0, 0.0, 1.0])

    with pytest.raises(tg.GradcheckError, match=r"element \(1,\) is 0\.0, but"):
        tg.gradcheck(Partial.apply, [np.array([0.5, 0.3, 2.0])])


def test_fn_must_compute_in_the_dtype_it_is_given():
    class ToFloat32(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return np.asarray(x.data, dtype=np.float32) * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2.0

    with pytest.raises(TypeError, match="float32 on float64 inputs"):
        tg.gradcheck(ToFloat32.apply, [np.array([1.0, 2.0])])


# ---- float32 ----

def float32_central_differences(f, x, eps=1e-6):
    """What central differences in float32 arithmetic give: f maps a float32 array to one."""
    out = np.empty(x.size, dtype=np.float32)
    for j in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[j] += np.float32(eps)
        minus.flat[j] -= np.float32(eps)
        out[j] = (f(plus) - f(minus)) / np.float32(2 * eps)
    return out


def test_float32_finite_differences_are_taken_in_float64():
    x = np.array([3.1, 7.7, 11.3], dtype=np.float32)
    exact = 3 * x.astype(np.float64) ** 2
    # Naive float32 central differences at eps=1e-6 are garbage at these values ...
    naive = float32_central_differences(lambda a: np.sum(a**3), x)
    assert np.max(np.abs(naive - exact) / exact) > 0.1
    # ... but gradcheck's are in float64: it passes, and fn saw float64 for them.
    seen = []

    def cube(t):
        seen.append(t.dtype)
        return (t * t * t).sum()

    assert tg.gradcheck(cube, [x])
    assert seen[0] == np.float32 and set(seen[1:]) == {np.dtype(np.float64)}
    assert len(seen) == 1 + 2 * x.size

    # gradgradcheck too: the first derivative 3 x^2 is differenced in float64.
    naive = float32_central_differences(lambda a: np.sum(3 * a**2), x)
    assert np.max(np.abs(naive - 6 * x.astype(np.float64)) / (6 * x)) > 0.1
    seen.clear()
    assert tg.gradgradcheck(cube, [x])
    assert seen[0] == np.float32 and set(seen[1:]) == {np.dtype(np.float64)}


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(BINARY))
def test_float32_ops_pass_at_default_tolerances(name, rng):
    ranges = [UNARY[name][2]] if name in UNARY else [BINARY[name][2], BINARY[name][3]]
    inputs = [rng.uniform(lo, hi, size=(2, 3)).astype(np.float32) for lo, hi in ranges]
    if name in ("abs", "relu", "fabs"):  # keep away from the kink
        inputs = [np.where(np.abs(v) < 0.1, np.float32(0.5), v) for v in inputs]
    fn = getattr(tg, name)
    assert tg.gradcheck(fn, inputs)
    assert tg.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("name", ["softmax", "logsumexp", "log_softmax", "mean", "var",
                                  "prod", "matmul_2d", "matmul_batched", "einsum_three",
                                  "mlp_layer"])
def test_float32_array_ops_pass_at_default_tolerances(name, rng):
    fn, shapes, _ = CASES[name]
    inputs = _inputs(name, shapes, rng, dtype=np.float32)
    assert tg.gradcheck(fn, inputs)
    assert tg.gradgradcheck(fn, inputs)
    # Larger values, where more of float32's precision goes.
    if name not in ("prod",):
        inputs = [v * np.float32(10) for v in inputs]
        assert tg.gradcheck(fn, inputs)
        assert tg.gradgradcheck(fn, inputs)


def test_float32_functions_pass_at_default_tolerances(rng):
    x = rng.uniform(-2, 2, size=5).astype(np.float32)
    assert tg.gradcheck(Cube.apply, [x]) and tg.gradgradcheck(Cube.apply, [x])
    assert tg.gradcheck(Softplus.apply, [x]) and tg.gradgradcheck(Softplus.apply, [x])
    assert tg.gradcheck(scaled_sin(1.0).apply, [x])


def test_float32_rounding_is_allowed_for_float32_only():
    x = np.array([0.3, 1.7, -2.2, 0.9], dtype=np.float32)
    cos = np.cos(x.astype(np.float64))
    t = tg.Tensor(x)
    (g,) = tg.grad(tg.sin(t), t, grad_outputs=np.ones(4, dtype=np.float32))
    tight = {"atol": 1e-9, "rtol": 1e-9}
    # float32's own rounding is outside the tight tolerances asked for ...
    assert np.any(np.abs(g.data - cos) > 1e-9 + 1e-9 * np.abs(cos))
    # ... and inside the float32 allowance, which replaces them.
    assert tg.gradcheck(tg.sin, [x], **tight)
    assert tg.gradgradcheck(tg.sin, [x], **tight)
    # The allowance is 2**8 units of float32's epsilon, no more:
    assert FLOAT32_ULPS * EPS32 == ALLOWANCE
    assert tg.gradcheck(scaled_sin(1 + 0.3 * ALLOWANCE).apply, [x], **tight)
    with pytest.raises(tg.GradcheckError, match=r"float32 inputs: atol=.*, rtol=3\.05e-05"):
        tg.gradcheck(scaled_sin(1 + 3 * ALLOWANCE).apply, [x], **tight)
    # ... and float64 inputs get none of it.
    with pytest.raises(tg.GradcheckError, match=r"rtol=1e-07\)"):
        tg.gradcheck(scaled_sin(1 + 0.3 * ALLOWANCE).apply, [x.astype(np.float64)],
                     atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("factor", [1.01, 0.99])
def test_float32_gradient_off_by_one_percent_fails(factor, rng):
    x = rng.uniform(-3, 3, size=(2, 3)).astype(np.float32)
    with pytest.raises(tg.GradcheckError, match="gradcheck: the gradient of input 0 at element"):
        tg.gradcheck(scaled_sin(factor).apply, [x])
    with pytest.raises(tg.GradcheckError, match="of input 1 at element"):
        tg.gradcheck(lambda a, b: a * b + scaled_sin(factor).apply(b), [x, x * 2])
    # Large gradients make the atol allowance large; 1% still shows.
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(lambda a: scaled_sin(factor).apply(a) * 1e4, [x])
    # ... and they widen only their own input's allowance, not another's.
    with pytest.raises(tg.GradcheckError, match="of input 1 at element"):
        tg.gradcheck(lambda a, b: a * 1e6 + scaled_sin(factor).apply(b), [x, x])


def test_float32_wrong_second_derivative_fails(rng):
    x = np.array([0.1, -0.2, 3.0], dtype=np.float32)
    for wrong in (DetachedCube, DataCube):
        assert tg.gradcheck(wrong.apply, [x])
        with pytest.raises(tg.GradcheckError, match=r"input 0 at element \(2,\)"):
            tg.gradgradcheck(wrong.apply, [x])
