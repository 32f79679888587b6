"""The PyTorch-style surface: backward, .grad, no_grad, grad(), in-place updates."""

import threading

import numpy as np
import pytest

import tapegrad as tg


def test_backward_accumulates_into_leaves():
    w = tg.Tensor(np.array([1.0, 2.0]))
    b = tg.Tensor(0.5)
    loss = (w * w * b).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(w.grad.data, [1.0, 2.0])
    assert b.grad.data == 5.0
    first = w.grad
    loss.backward()
    assert w.grad is first  # accumulated into the same Tensor, as in PyTorch
    np.testing.assert_array_equal(w.grad.data, [2.0, 4.0])
    assert not w.grad.requires_grad and w.grad.is_leaf
    w.grad = None
    assert w.grad is None


def test_backward_twice_needs_retain_graph():
    x = tg.Tensor(2.0)
    y = tg.exp(x) * x
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward\(\) or grad\(\) already went through it.*retain_graph=True"):
        y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        tg.compute_gradients(y, [x])
    z = x * 3.0  # a new graph from the same leaf still works
    z.backward()
    assert x.grad.data == pytest.approx(3 * np.exp(2.0) + 3.0)


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    y = x * x
    with pytest.raises(RuntimeError, match=r"implicitly created only for scalar outputs.*\(3,\)"):
        y.backward()
    y.backward(gradient=np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.grad.data, [2.0, 0.0, 12.0])


def test_backward_of_a_constant_raises():
    c = tg.tensor(1.0)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (c * 2.0).backward()


def test_constants_and_no_grad_record_nothing():
    w = tg.Tensor(np.ones(3))
    c = tg.tensor([1.0, 2.0, 3.0])
    assert not c.requires_grad and tg.Tensor(1.0).requires_grad
    before = len(tg.operation_history)
    assert not (c * 2.0 + tg.exp(c)).requires_grad
    with tg.no_grad():
        y = tg.tanh(w * 3.0).sum()
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = w * 2.0
    assert tg.is_grad_enabled()
    assert not y.requires_grad and z.requires_grad
    assert len(tg.operation_history) == before + 1

    @tg.no_grad()
    def evaluate(t):
        return t * t

    assert not evaluate(w).requires_grad


def test_grad_mode_is_per_thread():
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait()
        seen["other"] = (tg.Tensor(1.0) * 2.0).requires_grad
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with tg.no_grad():
        inside.set()
        done.wait()
        seen["here"] = (tg.Tensor(1.0) * 2.0).requires_grad
    thread.join()
    assert seen == {"other": True, "here": False}


def test_grad_returns_tensors_and_leaves_grad_alone():
    x = tg.Tensor(np.array([1.0, 2.0]))
    y = tg.Tensor(3.0)
    u = tg.Tensor(5.0)
    out = (x * y).sum()
    gx, gy = tg.grad(out, [x, y], retain_graph=True)
    np.testing.assert_array_equal(gx.data, [3.0, 3.0])
    assert gy.data == 3.0 and x.grad is None
    with pytest.raises(RuntimeError, match=r"does not appear in the graph.*allow_unused=True"):
        tg.grad(out, [x, u], retain_graph=True)
    gx, gu = tg.grad(out, [x, u], allow_unused=True, retain_graph=True)
    assert gu is None
    two = tg.grad([out, y * y], [y], grad_outputs=[1.0, 2.0])
    assert two[0].data == 3.0 + 2.0 * 6.0


def test_in_place_updates_inside_no_grad():
    w = tg.Tensor(np.array([1.0, 2.0]))
    y = w * 2.0
    with pytest.raises(RuntimeError, match=r"requires grad, so '-=' .*no_grad"):
        w -= 1.0
    with tg.no_grad():
        w -= 1.0
        w *= 3.0
    np.testing.assert_array_equal(w.data, [0.0, 3.0])
    assert w.requires_grad
    np.testing.assert_array_equal(y.data, [2.0, 4.0])  # recorded with the old value
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.data, [2.0, 2.0])
    s = tg.tensor(1.0)
    s += 2.0  # a constant may change at any time
    assert s.data == 3.0


def test_two_interleaved_graphs():
    w = tg.Tensor(2.0)
    a = w * 3.0
    b = w * w
    a.backward()
    assert w.grad.data == 3.0
    b.backward()
    assert w.grad.data == 3.0 + 4.0


def test_training_loop_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.uniform(-1, 1, size=(16, 4))
    target = rng.uniform(-1, 1, size=(16, 2))
    w0, b0 = rng.uniform(-1, 1, size=(4, 2)), np.zeros(2)
    w, b = tg.Tensor(w0.copy()), tg.Tensor(b0.copy())
    tw = torch.tensor(w0.copy(), requires_grad=True)
    tb = torch.tensor(b0.copy(), requires_grad=True)
    for _ in range(5):
        loss = ((tg.tanh(x @ w + b) - target) ** 2).mean()
        loss.backward()
        with tg.no_grad():
            w -= 0.5 * w.grad
            b -= 0.5 * b.grad
        w.grad = b.grad = None
        tloss = ((torch.tanh(torch.tensor(x) @ tw + tb) - torch.tensor(target)) ** 2).mean()
        tloss.backward()
        with torch.no_grad():
            tw -= 0.5 * tw.grad
            tb -= 0.5 * tb.grad
        tw.grad = tb.grad = None
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-12)


def test_backward_through_a_user_record_that_records_ops():
    """A backward_fn that computes with Tensors appends rows while the sweep runs."""
    a = tg.Tensor(np.array([1.0, 2.0]), "a")
    out = tg.Tensor(a.data ** 2)

    def backward(g):
        doubled = tg.Tensor(a.data) * 2.0  # recorded during the sweep
        return [doubled.data * g]

    tg.operation_history.append(tg.OperationRecord([a], [out], backward))
    (out * 3.0).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [6.0, 12.0])


def test_jacobian_and_vjp_against_torch(rng):
    torch = pytest.importorskip("torch")
    from torch.autograd import functional as F

    a, b = rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=3)

    def ours(x, y):
        return tg.tanh(x * y).sum(axis=0) + y * y

    def theirs(x, y):
        return torch.tanh(x * y).sum(0) + y * y

    j_ours = tg.jacobian(ours, (tg.Tensor(a), tg.Tensor(b)))
    j_theirs = F.jacobian(theirs, (torch.tensor(a), torch.tensor(b)))
    for j, t in zip(j_ours, j_theirs):
        assert j.shape == tuple(t.shape)
        np.testing.assert_allclose(j.data, t.numpy(), rtol=1e-12, atol=1e-14)
    v = rng.uniform(size=3)
    out, (gx, gy) = tg.vjp(ours, (tg.Tensor(a), tg.Tensor(b)), v)
    t_out, (tx, ty) = F.vjp(theirs, (torch.tensor(a), torch.tensor(b)), torch.tensor(v))
    np.testing.assert_allclose(out.data, t_out.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx.data, tx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gy.data, ty.numpy(), rtol=1e-12)
    np.testing.assert_allclose(tg.jacobian(tg.sin, tg.Tensor(0.5)).data, np.cos(0.5))


def test_grad_sweeps_and_frees_only_the_rows_that_lead_to_its_inputs():
    """Note [Needed rows], as torch.autograd.grad: w's branch is left as it was."""
    a = tg.Tensor(np.array([1.0, 2.0]))
    t = tg.Tensor(np.array([3.0, 4.0]))
    w = a * a
    (gt,) = tg.grad((t * w).sum(), t)
    np.testing.assert_allclose(gt.data, [1.0, 4.0])
    w.sum().backward()  # w's record was neither run nor freed
    np.testing.assert_allclose(a.grad.data, [2.0, 4.0])

    class Refuses(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2.0

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("a branch that leads to no input was swept")

    x, y = tg.Tensor(1.5), tg.Tensor(2.5)
    z = Refuses.apply(x) + y * y
    assert tg.grad(z, y)[0].data == 5.0
    (gy,) = tg.grad(Refuses.apply(x) * y, y, create_graph=True)
    assert gy.data == 3.0


def test_grad_against_torch_after_a_partial_grad():
    torch = pytest.importorskip("torch")
    a0, t0 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    a, t = tg.Tensor(a0), tg.Tensor(t0)
    ta, tt = torch.tensor(a0, requires_grad=True), torch.tensor(t0, requires_grad=True)
    w, tw = tg.exp(a) * a, torch.exp(ta) * ta
    loss, tloss = (t * w).sum() + (w * w).sum(), (tt * tw).sum() + (tw * tw).sum()
    np.testing.assert_allclose(tg.grad(loss, t, retain_graph=True)[0].data,
                               torch.autograd.grad(tloss, tt, retain_graph=True)[0].numpy())
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy())


def test_a_0d_array_leaf_accumulates_its_grad_over_two_backwards():
    """Two backward() into a 0-d array leaf add up (4.0, as PyTorch); it raised AxisError with a garbage axis."""
    torch = pytest.importorskip("torch")
    x = tg.Tensor(np.array(1.0))
    (x * 2.0).backward()
    (x * 2.0).backward()  # add_to_grad: PyNumber_Add of two 0-d arrays is an np.float64, used as an ndarray
    xt = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    (xt * 2.0).backward()
    (xt * 2.0).backward()
    assert float(x.grad.data) == xt.grad.item()


def test_grad_adds_the_seeds_of_a_scalar_output_given_twice():
    """tg.grad([y, y], x) is 2 dy/dx, as torch.autograd.grad."""
    torch = pytest.importorskip("torch")
    x = tg.Tensor(3.0)
    y = x * x
    (g,) = tg.grad([y, y], [x], retain_graph=True)
    xt = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    yt = xt * xt
    (gt,) = torch.autograd.grad([yt, yt], [xt], retain_graph=True)
    assert g.data == gt.item()  # 12 (was 6: a scalar seed overwrote the first)
    (g,) = tg.grad([y, y], [x], grad_outputs=[2.0, 3.0], retain_graph=True)
    assert g.data == 5.0 * 6.0  # was 18: the last seed only
    (g,) = tg.grad([x, x], [x])
    assert g.data == 2.0


def test_vjp_of_a_function_returning_the_same_scalar_twice():
    """tg.vjp with two outputs that are one tensor: the cotangents add up (12, as torch.autograd.functional.vjp)."""
    torch = pytest.importorskip("torch")

    def f(x):
        y = x * x
        return (y, y)

    _, g = tg.vjp(f, tg.Tensor(3.0), (1.0, 1.0))
    _, gt = torch.autograd.functional.vjp(lambda x: (x * x, x * x), torch.tensor(3.0, dtype=torch.float64),
                                          (torch.tensor(1.0, dtype=torch.float64),) * 2)
    assert g.data == gt.item()


# ---- value_and_grad: the functional form (DESIGN 4.2) ----


def _softplus(m):
    # log(1 + exp(m)) without overflow, from recorded ops
    return tg.relu(m) + np.log(1.0 + np.exp(-np.abs(m)))


def _logistic_data(rng, n=200, d=3):
    x = rng.normal(size=(n, d))
    w_true = np.array([1.5, -2.0, 0.5])[:d]
    t = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(x @ w_true + 0.3)))).astype(float)
    return x, t


def _logistic_objective(theta, x, t, c):
    """sklearn's: 0.5 |w|^2 + C * sum(log loss), the intercept (theta[-1]) not penalised."""
    w, b = theta[:-1], theta[-1]
    z = x @ w + b
    log_loss = _softplus(z) - t * z  # -log p(t | z) for labels in {0, 1}
    return 0.5 * np.sum(w * w) + c * np.sum(log_loss)


def test_value_and_grad_fits_a_logistic_regression_with_scipy(rng):
    optimize = pytest.importorskip("scipy.optimize")
    x, t = _logistic_data(rng)
    c = 0.7
    fit = optimize.minimize(tg.value_and_grad(_logistic_objective), np.zeros(4), args=(x, t, c),
                            jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-14})
    assert fit.success, fit.message
    w, b = fit.x[:-1], fit.x[-1]
    # The closed-form gradient at the optimum is ~0.
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    closed = np.concatenate([w + c * x.T @ (p - t), [c * np.sum(p - t)]])
    assert np.max(np.abs(closed)) < 1e-6
    value, g = tg.value_and_grad(_logistic_objective)(fit.x, x, t, c)
    np.testing.assert_allclose(g, closed, atol=1e-12)
    assert isinstance(value, float) and value == pytest.approx(fit.fun)
    linear_model = pytest.importorskip("sklearn.linear_model")
    ref = linear_model.LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, t)
    np.testing.assert_allclose(w, ref.coef_[0], rtol=1e-5, atol=1e-6)
    assert b == pytest.approx(ref.intercept_[0], rel=1e-5, abs=1e-6)


def test_value_and_grad_matches_torch_at_a_point(rng):
    torch = pytest.importorskip("torch")
    x, t = _logistic_data(rng, n=20)
    theta = rng.normal(size=4)
    value, g = tg.value_and_grad(_logistic_objective)(theta, x, t, 0.7)
    th = torch.tensor(theta, requires_grad=True)
    z = torch.from_numpy(x) @ th[:-1] + th[-1]
    ref = 0.5 * (th[:-1] ** 2).sum() + 0.7 * (torch.nn.functional.softplus(z) - torch.from_numpy(t) * z).sum()
    (ref_g,) = torch.autograd.grad(ref, th)
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(g, ref_g.numpy(), rtol=1e-12)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.flags.writeable


def test_value_and_grad_nested_arguments_mirror_their_structure():
    def f(params, scale):
        w, (b, extra) = params["w"], params["rest"]
        return scale * (np.sum(w * w) * b + extra["k"] ** 3)

    params = {"w": np.array([1.0, 2.0], np.float32), "rest": (0.5, {"k": 2})}
    value, g = tg.value_and_grad(f)(params, 3.0)
    assert value == pytest.approx(3.0 * (5.0 * 0.5 + 8.0))
    assert set(g) == {"w", "rest"} and isinstance(g["rest"], tuple)
    assert g["w"].dtype == np.float32  # dtype kept
    np.testing.assert_allclose(g["w"], 3.0 * 2 * np.array([1.0, 2.0]) * 0.5)
    assert isinstance(g["rest"][0], float) and g["rest"][0] == pytest.approx(15.0)
    assert isinstance(g["rest"][1]["k"], float) and g["rest"][1]["k"] == pytest.approx(36.0)
    assert params["rest"][1]["k"] == 2  # the caller's structure is untouched


def test_value_and_grad_argnums_tuple_and_lists():
    def f(a, b, c):
        return np.sum(a[0] * b) + a[1] * c

    a, b, c = [np.array([1.0, 2.0]), 3.0], np.array([4.0, 5.0]), 6.0
    value, (ga, gc) = tg.value_and_grad(f, argnums=(0, 2))(a, b, c)
    assert value == pytest.approx(14.0 + 18.0)
    assert isinstance(ga, list)
    np.testing.assert_array_equal(ga[0], b)
    assert ga[1] == 6.0 and gc == 3.0
    value, gb = tg.value_and_grad(f, argnums=-2)(a, b, c)
    np.testing.assert_array_equal(gb, a[0])
    _, (gb2,) = tg.value_and_grad(f, argnums=(1,))(a, b, c)
    np.testing.assert_array_equal(gb2, a[0])


def test_value_and_grad_errors_name_the_problem():
    with pytest.raises(TypeError, match=r"must return a scalar.*shape \(2,\).*tapegrad.sum"):
        tg.value_and_grad(lambda x: x * 2.0)(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"must return a scalar.*tuple"):
        tg.value_and_grad(lambda x: (x, x))(1.0)
    with pytest.raises(ValueError, match="argnums names argument 3"):
        tg.value_and_grad(lambda x: x, argnums=3)(1.0)
    with pytest.raises(ValueError, match="repeats"):
        tg.value_and_grad(lambda x: x, argnums=(0, 0))
    with pytest.raises(TypeError, match=r"argument 0\[1\] is a str"):
        tg.value_and_grad(lambda x: x[0])([1.0, "a"])
    with pytest.raises(TypeError, match="bool"):
        tg.value_and_grad(lambda x: x * 1.0)(True)
    with pytest.warns(UserWarning, match="does not depend"):
        value, g = tg.value_and_grad(lambda x: float(np.sum(x.data)))(np.array([1.0, 2.0]))
    assert value == 3.0
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_value_and_grad_integers_become_float64_and_keywords_pass_through():
    value, g = tg.value_and_grad(lambda x, power=2: np.sum(x ** power))(np.array([1, 2]), power=3)
    assert value == 9.0 and g.dtype == np.float64
    np.testing.assert_array_equal(g, [3.0, 12.0])
