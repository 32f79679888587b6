"""Note [Uniform gradients]: the gradient of a full sum or mean, and the default
seed of an array target, is one value at every element, kept unwritten inside
the sweep. Values must be what a written-out gradient gives, and whatever
leaves the sweep (results, hooks, a Function's backward) must be an ordinary
array of its own: writable when it is handed out as an array, read-only when it
is a Tensor's value (Note [Immutable values])."""

import numpy as np
import pytest

import tapegrad as tg

# Not a multiple of the kernels' block of 512 elements, and more than one block.
N = 1300


def assert_plain(g, shape, dtype=np.float64, writeable=True):
    """An ordinary array of its own: C-contiguous, of the shape, no zero strides;
    writable, or read-only for a Tensor's value."""
    assert isinstance(g, np.ndarray)
    assert g.shape == shape and g.dtype == dtype
    assert g.flags.writeable == writeable and g.flags.c_contiguous and g.flags.owndata
    assert g.size <= 1 or 0 not in g.strides


def test_default_seed_of_an_array_target(rng):
    a, b = rng.uniform(0.5, 2.0, size=(2, N))
    x, w = tg.Tensor(a), tg.Tensor(b)
    y = tg.tanh(x * w) / w
    gx, gw = tg.compute_gradients(y, [x, w])
    th = np.tanh(a * b)
    np.testing.assert_allclose(gx, 1 - th * th, rtol=1e-13)
    np.testing.assert_allclose(gw, (1 - th * th) * a / b - th / (b * b), rtol=1e-12)
    assert_plain(gx, (N,))
    assert_plain(gw, (N,))


def test_a_source_that_receives_the_seed_itself(rng):
    # add passes the seed on unchanged: x's gradient is the seed.
    a, b = rng.uniform(size=(2, N))
    x, w = tg.Tensor(a), tg.Tensor(b)
    gx, gw, gx_again = tg.compute_gradients(x + w * w, [x, w, x])
    np.testing.assert_array_equal(gx, np.ones(N))
    np.testing.assert_allclose(gw, 2 * b, rtol=1e-15)
    assert_plain(gx, (N,))
    gx[:] = 7.0
    np.testing.assert_array_equal(gx_again, np.ones(N))


@pytest.mark.parametrize("value", [2.5, 3])
def test_a_number_as_grad_output_scales_every_element(rng, value):
    a = rng.uniform(size=(7, 190))
    x = tg.Tensor(a)
    (gx,) = tg.compute_gradients(tg.exp(x) * x, [x], value)
    np.testing.assert_allclose(gx, value * np.exp(a) * (1 + a), rtol=1e-13)
    assert_plain(gx, (7, 190))


def test_the_target_as_its_own_source_gets_one_array_per_listing(rng):
    x = tg.Tensor(rng.uniform(size=N))
    g1, g2 = tg.compute_gradients(x, [x, x])
    np.testing.assert_array_equal(g1, np.ones(N))
    assert_plain(g1, (N,))
    g1[0] = 5.0  # the two are separate arrays
    assert g2[0] == 1.0


def test_sum_and_mean_backward(rng):
    a = rng.uniform(size=(40, 33))
    x = tg.Tensor(a, requires_grad=True)
    (tg.sum(tg.sin(x)) + tg.mean(x * x)).backward()
    np.testing.assert_allclose(x.grad.data, np.cos(a) + 2 * a / a.size, rtol=1e-13)
    assert_plain(x.grad.data, (40, 33), writeable=False)


def test_uniform_gradients_add_up(rng):
    a = rng.uniform(size=N)
    x = tg.Tensor(a, requires_grad=True)
    y = x * 3.0
    # y gets a uniform gradient twice (2, then 0.5): they add to a uniform 2.5.
    (2.0 * tg.sum(y) + tg.mean(y) * (N / 2)).backward()
    np.testing.assert_allclose(x.grad.data, np.full(N, 7.5), rtol=1e-14)


@pytest.mark.parametrize("uniform_first", [True, False])
def test_a_uniform_gradient_meets_a_written_one(rng, uniform_first):
    a = rng.uniform(size=N)
    x = tg.Tensor(a, requires_grad=True)
    y = tg.exp(x)
    parts = [tg.sum(y), tg.sum(y * y)]
    loss = parts[0] + parts[1] if uniform_first else parts[1] + parts[0]
    loss.backward()
    e = np.exp(a)
    np.testing.assert_allclose(x.grad.data, e + 2 * e * e, rtol=1e-13)


def test_a_uniform_gradient_into_matmul_and_a_broadcast_input(rng):
    a, m, r = rng.uniform(size=(64, 32)), rng.uniform(size=(32, 16)), rng.uniform(size=16)
    x, w, b = tg.Tensor(a), tg.Tensor(m), tg.Tensor(r)
    gx, gw, gb = tg.compute_gradients(x @ w + b, [x, w, b])
    np.testing.assert_allclose(gx, np.ones((64, 16)) @ m.T, rtol=1e-13)
    np.testing.assert_allclose(gw, a.T @ np.ones((64, 16)), rtol=1e-13)
    np.testing.assert_allclose(gb, np.full(16, 64.0))
    assert_plain(gb, (16,))


def test_float32_keeps_its_dtype(rng):
    a = rng.uniform(size=N).astype(np.float32)
    x = tg.Tensor(a)
    (gx,) = tg.compute_gradients(x * x + x, [x])
    assert_plain(gx, (N,), np.float32)
    np.testing.assert_allclose(gx, 2 * a + 1, rtol=1e-6)


def test_a_hook_gets_a_read_only_copy(rng):
    a = rng.uniform(size=N)
    x = tg.Tensor(a, requires_grad=True)
    y = x * 2.0
    seen = []

    def hook(g):
        assert_plain(g.data, (N,), writeable=False)
        seen.append(g.data.copy())

    y.register_hook(hook)
    tg.sum(y).backward()
    np.testing.assert_array_equal(seen[0], np.ones(N))
    np.testing.assert_array_equal(x.grad.data, np.full(N, 2.0))


class Square(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.data * x.data

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        assert_plain(g.data if isinstance(g, tg.Tensor) else g, x.shape)
        return g * 2.0 * x


def test_a_function_backward_gets_a_writable_gradient(rng):
    a = rng.uniform(size=N)
    x = tg.Tensor(a, requires_grad=True)
    tg.sum(Square.apply(x)).backward()
    np.testing.assert_allclose(x.grad.data, 2 * a, rtol=1e-14)


def test_create_graph_with_a_number_as_grad_output(rng):
    a = rng.uniform(size=N)
    x = tg.Tensor(a, requires_grad=True)
    y = x * x * x
    (gx,) = tg.grad(y, x, grad_outputs=2.0, create_graph=True)
    np.testing.assert_allclose(gx.data, 6 * a * a, rtol=1e-14)
    (ggx,) = tg.grad(tg.sum(gx), x)
    np.testing.assert_allclose(ggx.data, 12 * a, rtol=1e-14)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    a, b = rng.uniform(0.5, 2.0, size=(2, 3, N))
    x, w = tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)
    (tg.sum(tg.log(x) / w - x * w) + tg.mean(tg.sigmoid(x))).backward()
    tx, tw = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ((torch.log(tx) / tw - tx * tw).sum() + torch.sigmoid(tx).mean()).backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-10, atol=1e-12)
