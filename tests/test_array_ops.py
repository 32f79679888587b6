"""Every array op: finite differences (gradcheck) and PyTorch as an oracle.

CASES walks the array-op table: a name, the tapegrad call, the shapes of its
inputs, and the same computation in PyTorch.
"""

import numpy as np
import pytest

import tapegrad as tg

# name -> (fn(*tensors), input shapes, torch fn(torch, *tensors) or None)
CASES = {
    "sum_all": (lambda x: tg.sum(x), [(3, 4)], lambda t, x: x.sum()),
    "sum_axis0": (lambda x: x.sum(axis=0), [(3, 4)], lambda t, x: x.sum(0)),
    "sum_axes_keepdims": (lambda x: x.sum(axis=(0, 2), keepdims=True), [(2, 3, 4)],
                          lambda t, x: x.sum((0, 2), keepdim=True)),
    "sum_negative_axis": (lambda x: x.sum(axis=-1), [(2, 3)], lambda t, x: x.sum(-1)),
    "sum_0d": (lambda x: tg.sum(x), [()], lambda t, x: x.sum()),
    "mean": (lambda x: x.mean(axis=1), [(3, 5)], lambda t, x: x.mean(1)),
    "mean_all_keepdims": (lambda x: tg.mean(x, keepdims=True), [(2, 3)],
                          lambda t, x: x.mean().reshape(1, 1)),
    "max": (lambda x: x.max(axis=1), [(4, 5)], lambda t, x: x.amax(1)),
    "min_all": (lambda x: x.min(), [(4, 5)], lambda t, x: x.amin()),
    "prod": (lambda x: x.prod(axis=0), [(3, 4)], lambda t, x: x.prod(0)),
    "prod_all": (lambda x: tg.prod(x), [(2, 3)], lambda t, x: x.prod()),
    "var": (lambda x: x.var(axis=0), [(5, 3)], lambda t, x: x.var(0, unbiased=False)),
    "var_ddof1": (lambda x: tg.var(x, ddof=1), [(4, 3)], lambda t, x: x.var()),
    "std": (lambda x: x.std(axis=1, keepdims=True), [(3, 4)],
            lambda t, x: x.std(1, unbiased=False, keepdim=True)),
    "logsumexp": (lambda x: tg.logsumexp(x, axis=-1), [(3, 4)],
                  lambda t, x: t.logsumexp(x, -1)),
    "logsumexp_all": (lambda x: tg.logsumexp(x), [(3, 4)], lambda t, x: t.logsumexp(x, (0, 1))),
    "softmax": (lambda x: tg.softmax(x), [(3, 4)], lambda t, x: t.softmax(x, -1)),
    "softmax_axis0": (lambda x: tg.softmax(x, axis=0), [(3, 4)], lambda t, x: t.softmax(x, 0)),
    "log_softmax": (lambda x: tg.log_softmax(x, axis=1), [(2, 5)],
                    lambda t, x: t.log_softmax(x, 1)),
    "matmul_2d": (lambda a, b: a @ b, [(3, 4), (4, 5)], lambda t, a, b: a @ b),
    "matmul_vec_mat": (lambda a, b: a @ b, [(4,), (4, 5)], lambda t, a, b: a @ b),
    "matmul_mat_vec": (lambda a, b: tg.matmul(a, b), [(3, 4), (4,)], lambda t, a, b: a @ b),
    "matmul_vec_vec": (lambda a, b: a @ b, [(4,), (4,)], lambda t, a, b: a @ b),
    "matmul_batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)], lambda t, a, b: a @ b),
    "matmul_batch_broadcast": (lambda a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)],
                               lambda t, a, b: a @ b),
    "matmul_vec_batched": (lambda a, b: a @ b, [(4,), (2, 4, 3)], lambda t, a, b: a @ b),
    "dot": (lambda a, b: tg.dot(a, b), [(3, 4), (4,)], lambda t, a, b: a @ b),
    "dot_nd": (lambda a, b: tg.dot(a, b), [(2, 3, 4), (5, 4, 2)],
               lambda t, a, b: t.tensordot(a, b, dims=([2], [1]))),
    "outer": (lambda a, b: tg.outer(a, b), [(3,), (4,)], lambda t, a, b: t.outer(a, b)),
    "einsum_matmul": (lambda a, b: tg.einsum("ij,jk->ik", a, b), [(2, 3), (3, 4)],
                      lambda t, a, b: t.einsum("ij,jk->ik", a, b)),
    "einsum_batched": (lambda a, b: tg.einsum("bij,bjk->bik", a, b), [(2, 2, 3), (2, 3, 2)],
                       lambda t, a, b: t.einsum("bij,bjk->bik", a, b)),
    "einsum_trace": (lambda a: tg.einsum("ii->", a), [(3, 3)], lambda t, a: t.einsum("ii->", a)),
    "einsum_diagonal": (lambda a: tg.einsum("ii->i", a), [(3, 3)],
                        lambda t, a: t.einsum("ii->i", a)),
    "einsum_row_sums": (lambda a: tg.einsum("ij->i", a), [(3, 4)],
                        lambda t, a: t.einsum("ij->i", a)),
    "einsum_three": (lambda a, b, c: tg.einsum("i,ij,j->", a, b, c), [(3,), (3, 4), (4,)],
                     lambda t, a, b, c: t.einsum("i,ij,j->", a, b, c)),
    "reshape": (lambda x: x.reshape(4, -1), [(2, 3, 2)], lambda t, x: x.reshape(4, -1)),
    "transpose": (lambda x: x.transpose(2, 0, 1), [(2, 3, 4)], lambda t, x: x.permute(2, 0, 1)),
    "T": (lambda x: x.T * 1.0, [(2, 3)], lambda t, x: x.T * 1.0),
    "swapaxes": (lambda x: tg.swapaxes(x, 0, 2), [(2, 3, 4)], lambda t, x: x.transpose(0, 2)),
    "expand_dims": (lambda x: tg.expand_dims(x, 1), [(2, 3)], lambda t, x: x.unsqueeze(1)),
    "squeeze": (lambda x: tg.squeeze(x), [(2, 1, 3, 1)], lambda t, x: x.squeeze()),
    "flatten": (lambda x: x.flatten(), [(2, 3)], lambda t, x: x.flatten()),
    "broadcast_to": (lambda x: tg.broadcast_to(x, (4, 2, 3)), [(2, 1)],
                     lambda t, x: x.broadcast_to((4, 2, 3))),
    "getitem_int": (lambda x: x[1], [(3, 4)], lambda t, x: x[1]),
    "getitem_slices": (lambda x: x[::-1, 1:3], [(4, 5)], lambda t, x: x.flip(0)[:, 1:3]),
    "getitem_ellipsis_none": (lambda x: x[..., None, 0], [(2, 3, 4)],
                              lambda t, x: x[..., None, 0]),
    "getitem_int_array_repeats": (lambda x: x[np.array([0, 2, 0, 0])], [(3, 2)],
                                  lambda t, x: x[t.tensor([0, 2, 0, 0])]),
    "getitem_mask": (lambda x: x[np.array([True, False, True])], [(3, 2)],
                     lambda t, x: x[t.tensor([True, False, True])]),
    "getitem_mixed": (lambda x: x[1:, np.array([0, 0, 2])], [(3, 4)],
                      lambda t, x: x[1:, t.tensor([0, 0, 2])]),
    "iterate": (lambda x: tg.stack([row * (i + 1.0) for i, row in enumerate(x)]), [(3, 2)],
                lambda t, x: t.stack([row * (i + 1.0) for i, row in enumerate(x)])),
    "concatenate": (lambda a, b: tg.concatenate([a, b], axis=1), [(2, 3), (2, 2)],
                    lambda t, a, b: t.cat([a, b], 1)),
    "concatenate_flat": (lambda a, b: tg.concatenate([a, b], axis=None), [(2, 2), (3,)],
                         lambda t, a, b: t.cat([a.flatten(), b])),
    "stack": (lambda a, b: tg.stack([a, b], axis=-1), [(2, 3), (2, 3)],
              lambda t, a, b: t.stack([a, b], -1)),
    "split": (lambda x: tg.split(x, 2, axis=1)[1] * tg.split(x, [1], axis=1)[0], [(3, 4)],
              lambda t, x: x[:, 2:] * x[:, :1]),
    "where": (lambda a, b: tg.where(a.data > 0, a, b), [(3, 4), (3, 4)],
              lambda t, a, b: t.where(a > 0, a, b)),
    "where_broadcast": (lambda a, b: tg.where(np.array([True, False, True]), a, b), [(2, 3), ()],
                        lambda t, a, b: t.where(t.tensor([True, False, True]), a, b)),
    "clip": (lambda x: tg.clip(x, -0.5, 0.5), [(4, 5)], lambda t, x: x.clip(-0.5, 0.5)),
    "maximum": (lambda a, b: tg.maximum(a, b), [(3, 4), (4,)], lambda t, a, b: t.maximum(a, b)),
    "minimum": (lambda a, b: np.minimum(a, b), [(3, 1), (1, 4)], lambda t, a, b: t.minimum(a, b)),
    "broadcast_add": (lambda a, b: a + b, [(3, 1), (1, 4)], lambda t, a, b: a + b),
    "broadcast_mul_3d": (lambda a, b: a * b, [(4,), (2, 3, 4)], lambda t, a, b: a * b),
    "broadcast_div_keepdim": (lambda a, b: a / b, [(2, 3), (2, 1)], lambda t, a, b: a / b),
    "mlp_layer": (lambda x, w, b: tg.log_softmax(tg.tanh(x @ w + b)).sum(),
                  [(5, 4), (4, 3), (3,)],
                  lambda t, x, w, b: t.log_softmax(t.tanh(x @ w + b), -1).sum()),
}

POSITIVE = {"prod", "prod_all"}


def _inputs(name, shapes, rng, dtype=np.float64):
    values = []
    for shape in shapes:
        v = rng.uniform(-1, 1, size=shape)
        if name in POSITIVE:
            v = rng.uniform(0.5, 1.5, size=shape)
        values.append(np.asarray(v, dtype=dtype))
    return values


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name, rng):
    fn, shapes, _ = CASES[name]
    inputs = [tg.Tensor(v) for v in _inputs(name, shapes, rng)]
    assert tg.gradcheck(fn, inputs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    fn, shapes, torch_fn = CASES[name]
    values = _inputs(name, shapes, rng, dtype)
    ours = [tg.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    out = fn(*ours)
    ref = torch_fn(torch, *theirs)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    assert out.data.dtype == dtype
    weight = np.asarray(rng.uniform(0.5, 1.5, size=out.shape), dtype=dtype)
    (ref * torch.tensor(weight)).sum().backward()
    grads = tg.compute_gradients(out, ours, grad_output=weight)
    for g, t, v in zip(grads, theirs, values):
        assert np.shape(g) == v.shape and np.asarray(g).dtype == dtype
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=10 * tol, atol=10 * tol)


def test_numpy_functions_dispatch_like_the_methods(rng):
    a = rng.uniform(-1, 1, size=(3, 4))
    pairs = [
        (lambda x: np.sum(x, axis=0), lambda x: x.sum(axis=0)),
        (lambda x: np.mean(x), lambda x: x.mean()),
        (lambda x: np.max(x, axis=1, keepdims=True), lambda x: x.max(axis=1, keepdims=True)),
        (lambda x: np.reshape(x, (4, 3)), lambda x: x.reshape(4, 3)),
        (lambda x: np.transpose(x), lambda x: x.T),
        (lambda x: np.concatenate([x, x]), lambda x: tg.concatenate([x, x])),
        (lambda x: np.where(a > 0, x, 0.0), lambda x: tg.where(a > 0, x, 0.0)),
        (lambda x: np.matmul(x, x.T), lambda x: x @ x.T),
        (lambda x: np.clip(x, -0.2, 0.3), lambda x: x.clip(-0.2, 0.3)),
        (lambda x: np.std(x, axis=0, ddof=1), lambda x: x.std(axis=0, ddof=1)),
        (lambda x: np.stack([x, x], axis=1), lambda x: tg.stack([x, x], axis=1)),
        (lambda x: np.split(x, 2, axis=1)[0], lambda x: tg.split(x, 2, axis=1)[0]),
        (lambda x: np.einsum("ij->j", x), lambda x: tg.einsum("ij->j", x)),
        (lambda x: np.maximum(x, 0.1), lambda x: tg.maximum(x, 0.1)),
    ]
    for via_numpy, via_tapegrad in pairs:
        x1, x2 = tg.Tensor(a), tg.Tensor(a)
        y1, y2 = via_numpy(x1), via_tapegrad(x2)
        assert isinstance(y1, tg.Tensor)
        np.testing.assert_array_equal(y1.data, y2.data)
        np.testing.assert_array_equal(tg.compute_gradients(y1, [x1])[0],
                                      tg.compute_gradients(y2, [x2])[0])


def test_repeated_indices_accumulate():
    x = tg.Tensor(np.arange(4.0))
    y = x[np.array([1, 1, 1, 3])].sum()
    np.testing.assert_array_equal(tg.compute_gradients(y, [x])[0], [0, 3, 0, 1])


def test_ties_split_evenly():
    x = tg.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))
    np.testing.assert_allclose(tg.compute_gradients(x.max(axis=1).sum(), [x])[0],
                               [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(tg.compute_gradients(x.min(), [x])[0],
                               [[1, 0, 0], [0, 0, 0]])
    a, b = tg.Tensor(np.array([1.0, 2.0])), tg.Tensor(np.array([1.0, 3.0]))
    ga, gb = tg.compute_gradients(tg.maximum(a, b).sum(), [a, b])
    np.testing.assert_array_equal(ga, [0.5, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0])
    ga, gb = tg.compute_gradients(tg.minimum(a, b).sum(), [a, b])
    np.testing.assert_array_equal(ga, [0.5, 1.0])


def test_clip_passes_the_gradient_on_its_boundaries():
    x = tg.Tensor(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]))
    (g,) = tg.compute_gradients(tg.clip(x, 0.0, 1.0).sum(), [x])
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0])


def test_prod_gradient_is_exact_at_zeros():
    x = tg.Tensor(np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0]]))
    (g,) = tg.compute_gradients(x.prod(axis=1).sum(), [x])
    np.testing.assert_array_equal(g, [[6, 0, 0], [0, 0, 0]])


def test_softmax_and_logsumexp_do_not_overflow():
    x = tg.Tensor(np.array([1000.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(tg.softmax(x).data, [0.5, 0.5, 0.0])
    assert tg.logsumexp(x).data == pytest.approx(1000 + np.log(2))
    np.testing.assert_allclose(tg.compute_gradients(tg.logsumexp(x), [x])[0], [0.5, 0.5, 0])


@pytest.mark.parametrize("special", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_along_the_last_axis_agrees_with_the_general_path(dtype, special, rng):
    """The last axis of a contiguous array has its own kernel; any other axis
    takes numpy's calls. Same values; infinities and NaN go the general way,
    for numpy's warnings."""
    x = rng.normal(size=(6, 5)) * 30
    x[5, 3] = 800.0  # exp would overflow without the maximum taken out
    if special:
        x[1, 2], x[2, :], x[3, 0], x[4, 1] = np.inf, -np.inf, np.nan, -np.inf
    x = x.astype(dtype)
    for fn in (tg.softmax, tg.log_softmax, tg.logsumexp):
        with np.errstate(all="ignore"):  # inf - inf, log(0): numpy's warnings
            last = fn(tg.Tensor(x), axis=-1).data
            general = fn(tg.Tensor(x.T.copy()), axis=0).data
        np.testing.assert_allclose(last, general.T if last.ndim == 2 else general,
                                   rtol=1e-6 if dtype == np.float32 else 1e-13)
        assert last.dtype == dtype


def test_array_op_results_are_read_only():
    x = tg.Tensor(np.arange(3.0))
    y = x.sum(axis=0, keepdims=True)
    with pytest.raises(ValueError, match="read-only"):
        y.data[0] = 5.0


def test_plain_values_give_plain_results():
    a = np.arange(6.0).reshape(2, 3)
    assert isinstance(tg.sum(a), np.floating)
    np.testing.assert_array_equal(tg.reshape(a, 3, 2), a.reshape(3, 2))
    assert len(tg.operation_history) == 0


@pytest.mark.parametrize("call, kind, match", [
    (lambda x: x.sum(axis=2), np.exceptions.AxisError, r"sum: axis 2 is out of bounds .* dimension 2"),
    (lambda x: tg.softmax(x, axis=-3), np.exceptions.AxisError, "softmax: axis -3"),
    (lambda x: x @ tg.Tensor(np.ones((4, 2))), ValueError,
     r"matmul: shapes \(2, 3\) and \(4, 2\) do not align: the last axis of the first \(3\) "
     r"must equal the second-to-last axis of the second \(4\)"),
    (lambda x: x @ 2.0, ValueError, "matmul: operands must have at least one dimension"),
    (lambda x: tg.concatenate([x, tg.Tensor(np.ones((3, 3)))], axis=1), ValueError,
     "concatenate: all the input array dimensions except for the concatenation axis"),
    (lambda x: x.reshape(4, 2), ValueError, "reshape: cannot reshape array of size 6"),
    (lambda x: x[5], IndexError, "getitem: index 5 is out of bounds"),
    (lambda x: tg.einsum("ij,jk->ik", x), ValueError, "names 2 operands, 1 given"),
    (lambda x: tg.einsum("ij->ii", x), ValueError, "repeats a letter"),
    (lambda x: tg.split(x, 4, axis=1), ValueError, "does not split into 4 equal sections"),
    (lambda x: tg.squeeze(x, 0), ValueError, r"axis 0 has length 2, not 1"),
    (lambda x: tg.clip(x), ValueError, "give a_min, a_max or both"),
])
def test_clear_errors(call, kind, match):
    x = tg.Tensor(np.ones((2, 3)))
    with pytest.raises(kind, match=match):
        call(x)
    y = tg.Tensor(2.0)
    assert tg.compute_gradients(y * y, [y]) == [4.0]


# Note [Passed gradients]: add's and sub's inputs receive the row's gradient
# buffer itself, added into theirs or summed down to a broadcast shape.
# Closed forms for an upstream gradient w of the output's shape.
PASSED = {
    "x + x": (lambda x: x + x, [(4, 5)], lambda w, x: [2 * w]),
    "x - x": (lambda x: x - x, [(4, 5)], lambda w, x: [0 * w]),
    "x + row": (lambda x, b: x + b, [(4, 5), (5,)], lambda w, x, b: [w, w.sum(0)]),
    "row - x": (lambda b, x: b - x, [(5,), (4, 5)], lambda w, b, x: [w.sum(0), -w]),
    "x - column": (lambda x, c: x - c, [(4, 5), (4, 1)],
                   lambda w, x, c: [w, -w.sum(1, keepdims=True)]),
    "(x + column) + row": (lambda x, c, b: (x + c) + b, [(4, 5), (4, 1), (5,)],
                           lambda w, x, c, b: [w, w.sum(1, keepdims=True), w.sum(0)]),
    "tanh(x) + x": (lambda x: tg.tanh(x) + x, [(4, 5)],
                    lambda w, x: [w * (1 - np.tanh(x) ** 2) + w]),
    "x + scalar": (lambda x, s: x + s, [(4, 5), ()], lambda w, x, s: [w, w.sum()]),
    "x + y + x": (lambda x, y: (x + y) + x, [(4, 5), (4, 5)], lambda w, x, y: [2 * w, w]),
}


@pytest.mark.parametrize("name", sorted(PASSED))
def test_passed_gradients(name, rng):
    fn, shapes, expected = PASSED[name]
    values = [rng.uniform(-1, 1, size=s) if s else float(rng.uniform(-1, 1)) for s in shapes]
    tensors = [tg.Tensor(v) for v in values]
    out = fn(*tensors)
    w = rng.uniform(0.5, 1.5, size=out.shape)
    grads = tg.compute_gradients(out, tensors, grad_output=w)
    for g, want, v in zip(grads, expected(w, *values), values):
        assert np.shape(g) == np.shape(v)
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)
    arrays = [g for g in grads if isinstance(g, np.ndarray)]
    for i, g in enumerate(arrays):  # each its own buffer
        assert not any(np.shares_memory(g, h) for h in arrays[i + 1:])


def test_passed_gradients_keep_a_requested_intermediate_apart(rng):
    """The row's gradient is asked for: its input gets a copy, not the same buffer."""
    x, b = tg.Tensor(rng.uniform(size=(4, 5))), tg.Tensor(rng.uniform(size=5))
    u = x + b
    out = tg.tanh(u) + x * 2.0
    w = rng.uniform(0.5, 1.5, size=(4, 5))
    gu, gx, gb = tg.compute_gradients(out, [u, x, b], grad_output=w)
    want_u = w * (1 - np.tanh(u.data) ** 2)
    np.testing.assert_allclose(gu, want_u, rtol=1e-12)
    np.testing.assert_allclose(gx, want_u + 2 * w, rtol=1e-12)
    np.testing.assert_allclose(gb, want_u.sum(0), rtol=1e-12)
    assert not np.shares_memory(gu, gx)


def test_passed_gradients_keep_their_dtypes(rng):
    x = tg.Tensor(rng.uniform(size=(3, 4)).astype(np.float32))
    y = tg.Tensor(rng.uniform(size=(3, 4)))
    out = x + y  # float64
    w = rng.uniform(size=(3, 4))
    gx, gy = tg.compute_gradients(out, [x, y], grad_output=w)
    assert gx.dtype == np.float32 and gy.dtype == np.float64
    np.testing.assert_allclose(gx, w.astype(np.float32), rtol=1e-7)
    np.testing.assert_allclose(gy, w, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
def test_row_broadcasts_match_numpy_exactly(op, dtype, rng):
    """Note [Row broadcasts]: a matrix and a row take one native loop; numpy's arithmetic,
    element for element, in either order; the row's gradient sums the rows."""
    big = rng.uniform(0.5, 1.5, size=(3, 64, 40)).astype(dtype)  # >= 4096 elements
    row = rng.uniform(0.5, 1.5, size=40).astype(dtype)
    fn = getattr(np, op)
    for left, right in ((big, row), (row, big)):
        a, b = tg.Tensor(left), tg.Tensor(right)
        out = getattr(tg, op)(a, b)
        np.testing.assert_array_equal(out.data, fn(left, right))
        assert out.data.dtype == dtype
    a, b = tg.Tensor(big), tg.Tensor(row)
    w = rng.uniform(size=big.shape).astype(dtype)
    ga, gb = tg.compute_gradients(getattr(tg, op)(a, b), [a, b], grad_output=w)
    assert gb.shape == row.shape and gb.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    want_a = {"add": w, "subtract": w, "multiply": w * row, "divide": w / row}[op]
    want_b = {"add": w, "subtract": -w, "multiply": w * big, "divide": -w * big / row**2}[op]
    np.testing.assert_allclose(ga, want_a, rtol=tol)
    np.testing.assert_allclose(gb, want_b.sum(axis=(0, 1)), rtol=tol)


SAME_OPERAND = {  # f(x, x) and its derivative in x
    "multiply": (lambda x: 2 * x),
    "divide": (lambda x: np.zeros_like(x)),
    "add": (lambda x: np.full_like(x, 2.0)),
    "subtract": (lambda x: np.zeros_like(x)),
    "power": (lambda x: x ** x * (np.log(x) + 1)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("earlier", [False, True])
@pytest.mark.parametrize("op", sorted(SAME_OPERAND))
def test_one_array_as_both_operands(op, earlier, dtype, rng):
    """x * x and the like: the two gradients meet in one buffer, which is either
    new (written) or already holds a gradient (added to), over 1300 elements."""
    a = rng.uniform(0.5, 1.5, size=1300).astype(dtype)
    w = rng.uniform(0.5, 1.5, size=1300).astype(dtype)
    x = tg.Tensor(a)
    # With `earlier`, x's buffer already holds tanh's gradient when op's row runs.
    out = getattr(tg, op)(x, x) * w + (tg.tanh(x) if earlier else 0.0)
    (gx,) = tg.compute_gradients(out, [x])
    want = w.astype(np.float64) * SAME_OPERAND[op](a.astype(np.float64))
    if earlier:
        want = want + 1 - np.tanh(a.astype(np.float64)) ** 2
    assert gx.dtype == dtype
    tol = 1e-13 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(gx, want, rtol=tol, atol=tol)


def test_a_constant_tensor_operand_gets_no_gradient(rng):
    """A Tensor that does not require grad (tg.tensor, as_tensor) is a constant: the
    sweep computes no gradient for it (a matmul's dX, a kernel's sink), and asking for
    one is refused: c[:, :3] below records nothing, so it would be partial."""
    x, w0 = rng.uniform(-1, 1, size=(6, 4)), rng.uniform(-1, 1, size=(4, 3))
    c, w = tg.as_tensor(x), tg.Tensor(w0)
    y = tg.sum(tg.tanh(c @ w) * c[:, :3])
    t = 1 - np.tanh(x @ w0) ** 2
    (gw,) = tg.compute_gradients(y, [w])
    np.testing.assert_allclose(gw, x.T @ (t * x[:, :3]), rtol=1e-12)
    (gw2,) = tg.grad(y, w)
    np.testing.assert_allclose(gw2.data, gw, rtol=1e-12)
    with pytest.raises(RuntimeError, match=r"source 1 .* does not require grad"):
        tg.compute_gradients(y, [w, c])
    with pytest.raises(RuntimeError, match=r"grad: source 0 .* does not require grad"):
        tg.grad(y, c)
