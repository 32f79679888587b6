"""tapegrad.jacobian, vjp, jvp, hessian and hvp against torch.autograd.functional.

With create_graph=True each input is differentiated on a node of its own, so
the results are partials with respect to each input slot (the same tensor
given twice, or one input computed from another, do not mix), and they still
carry history back to the caller's tensors. Tuple outputs, tuple v, omitted v
and strict=True follow PyTorch's rules.
"""

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.autograd.functional")


def assert_same(ours, theirs, grad_flags=True):
    """Same nesting, shapes and values (and requires_grad) as torch's result."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert_same(o, t, grad_flags)
        return
    assert isinstance(ours, tg.Tensor)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(np.asarray(ours.data, dtype=float), theirs.detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    if grad_flags:
        assert ours.requires_grad == theirs.requires_grad


def flat(result):
    """The Tensors of a (nested) helper result, in order."""
    if isinstance(result, tuple):
        return [t for r in result for t in flat(r)]
    return [result]


def total(result):
    """The sum of every element of every tensor in a helper result (skips constants)."""
    terms = [t.sum() for t in flat(result) if t.requires_grad]
    return terms[0] if len(terms) == 1 else sum(terms[1:], terms[0])


def leaf_pair(value):
    """The same value as a tapegrad leaf and a torch float64 leaf (both require grad)."""
    return tg.Tensor(value), torch.tensor(value, dtype=torch.float64, requires_grad=True)


# ---- the brief's examples ----

def test_aliased_inputs_give_partials_with_create_graph():
    f = lambda a, b: (a * b * b).sum()  # noqa: E731
    x, tx = leaf_pair([1.0, 2.0])
    ours = tg.jacobian(f, (x, x), create_graph=True)
    np.testing.assert_allclose(ours[0].data, [1.0, 4.0])
    np.testing.assert_allclose(ours[1].data, [2.0, 8.0])
    assert_same(ours, F.jacobian(f, (tx, tx), create_graph=True))


def test_dependent_inputs_give_partials_with_create_graph():
    x, tx = leaf_pair([1.0, 2.0])
    ours = tg.jacobian(lambda a, b: a * b, (x * 2, x), create_graph=True)
    np.testing.assert_allclose(ours[1].data, np.diag([2.0, 4.0]))
    np.testing.assert_allclose(ours[0].data, np.diag([1.0, 2.0]))
    assert_same(ours, F.jacobian(lambda a, b: a * b, (tx * 2, tx), create_graph=True))


# ---- all four helpers with create_graph, and a second differentiation ----

def scalar_fn(m):
    return lambda a, b: (a * a * b * b * b).sum() + m.sin(a * b).sum()


def tuple_fn(m):
    return lambda a, b: (m.sin(a) * b * b, (a * a * b).sum())


def run(helper, m, inputs, v):
    """One helper call with create_graph=True on module m (tapegrad or torch.autograd)."""
    lib = tg if m is tg else F
    if helper == "jacobian":
        return lib.jacobian(tuple_fn(m), inputs, create_graph=True)
    if helper == "hessian":
        return lib.hessian(scalar_fn(m), inputs, create_graph=True)
    if helper == "vjp":
        return lib.vjp(tuple_fn(m), inputs, v, create_graph=True)
    if helper == "jvp":
        return lib.jvp(tuple_fn(m), inputs, v, create_graph=True)
    return lib.hvp(scalar_fn(m), inputs, v, create_graph=True)


@pytest.mark.parametrize("helper", ["jacobian", "vjp", "jvp", "hessian", "hvp"])
@pytest.mark.parametrize("how", ["aliased", "dependent", "independent"])
@pytest.mark.parametrize("value", [[0.5, -1.2, 2.0], 0.7], ids=["array", "scalar"])
def test_create_graph_results_and_their_gradients_match_torch(helper, how, value):
    x, tx = leaf_pair(value)
    if how == "aliased":
        ours_in, theirs_in = (x, x), (tx, tx)
    elif how == "dependent":
        ours_in, theirs_in = (tg.tanh(x), x), (torch.tanh(tx), tx)
    else:
        z, tz = leaf_pair((np.asarray(value) * 0.5 + 0.3).tolist())
        ours_in, theirs_in = (x, z), (tx, tz)
    shape = np.shape(value)
    v_in = (np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape),) * 2
    if helper == "vjp":  # one v per output: sin(a) * b * b has the input's shape, then a scalar
        v_in = (v_in[0], 1.5)
    ours = run(helper, tg, ours_in,
               tuple(float(e) if np.ndim(e) == 0 else e for e in v_in))
    theirs = run(helper, torch, theirs_in, tuple(torch.tensor(e, dtype=torch.float64)
                                                 for e in v_in))
    assert_same(ours, theirs)
    # Differentiated again with respect to the caller's tensor: totals through both slots.
    (g,) = tg.grad(total(ours), x)
    (tgr,) = torch.autograd.grad(total(theirs), tx)
    np.testing.assert_allclose(np.asarray(g.data), tgr.numpy(), rtol=1e-12, atol=1e-14)


def test_second_differentiation_of_a_single_input_jacobian():
    # The example of the brief: grad(jacobian(f, x, create_graph=True).sum(), x).
    x, tx = leaf_pair([0.3, -0.8, 1.1])
    j = tg.jacobian(lambda t: tg.sin(t) * t.sum(), x, create_graph=True)
    tj = F.jacobian(lambda t: torch.sin(t) * t.sum(), tx, create_graph=True)
    assert_same(j, tj)
    np.testing.assert_allclose(tg.grad(j.sum(), x)[0].data,
                               torch.autograd.grad(tj.sum(), tx)[0].numpy(), rtol=1e-12)


def test_constant_inputs_become_leaves_of_their_own_with_create_graph():
    # torch makes a requires_grad leaf of an input that does not require grad.
    c = tg.tensor([1.0, 2.0])
    tc = torch.tensor([1.0, 2.0], dtype=torch.float64)
    j = tg.jacobian(lambda a: a * a, c, create_graph=True)
    assert_same(j, F.jacobian(lambda a: a * a, tc, create_graph=True))
    assert c.grad is None and not c.requires_grad
    j = tg.jacobian(lambda a, b: a * b, (np.array([1.0, 2.0]), 3.0), create_graph=True)
    np.testing.assert_allclose(j[0].data, np.diag([3.0, 3.0]))
    np.testing.assert_allclose(j[1].data, [1.0, 2.0])


def test_create_graph_keeps_float32():
    x = tg.Tensor(np.array([1.0, 2.0], dtype=np.float32))
    j = tg.jacobian(lambda a, b: a * b, (x, x), create_graph=True)
    assert j[0].data.dtype == np.float32 and j[1].data.dtype == np.float32
    np.testing.assert_allclose(j[0].data, np.diag([1.0, 2.0]))


def test_vjp_v_that_requires_grad_stays_differentiable():
    x, tx = leaf_pair([0.5, 1.5])
    v, tv = leaf_pair([2.0, -1.0])
    _, g = tg.vjp(lambda a: tg.sin(a) * a, x, v, create_graph=True)
    _, tgv = F.vjp(lambda a: torch.sin(a) * a, tx, tv, create_graph=True)
    assert_same(g, tgv)
    ours = tg.grad(g.sum(), (x, v))
    theirs = torch.autograd.grad(tgv.sum(), (tx, tv))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.data, t.numpy(), rtol=1e-12)
    _, hv = tg.hvp(lambda a: (a * a * a).sum(), x, v, create_graph=True)
    _, thv = F.hvp(lambda a: (a * a * a).sum(), tx, tv, create_graph=True)
    assert_same(hv, thv)
    np.testing.assert_allclose(tg.grad(hv.sum(), v)[0].data,
                               torch.autograd.grad(thv.sum(), tv)[0].numpy(), rtol=1e-12)


# ---- tuple outputs, tuple v, omitted v ----

@pytest.mark.parametrize("create_graph", [False, True])
def test_jacobian_of_tuple_outputs_nests_as_torch(create_graph):
    x, tx = leaf_pair([1.0, 2.0, -0.5])
    y, ty = leaf_pair(0.25)
    cases = [
        (lambda a: (a * a, a.sum()), x, tx),  # tuple out, one input: a tuple over outputs
        (lambda a, b: (a * b, (a * a).sum() * b), (x, y), (tx, ty)),  # J[i][j]
        (lambda a: (a * a,), x, tx),  # a tuple of one output
        (lambda a: a * a, (x,), (tx,)),  # a tuple of one input
        (lambda a: (a * 3.0,), (x,), (tx,)),
        (lambda a, b: (a * b, b * b), (x, x), (tx, tx)),  # aliased, tuple in and out
    ]
    for fn, ours_in, theirs_in in cases:
        ours = tg.jacobian(fn, ours_in, create_graph=create_graph)
        theirs = F.jacobian(fn, theirs_in, create_graph=create_graph)
        assert_same(ours, theirs)


def test_jacobian_of_an_output_that_does_not_require_grad_is_zeros():
    x, tx = leaf_pair([1.0, 2.0])
    ours = tg.jacobian(lambda a: (a * a, tg.tensor([5.0, 6.0, 7.0])), x)
    theirs = F.jacobian(lambda a: (a * a, torch.tensor([5.0, 6.0, 7.0])), tx)
    assert_same(ours, theirs)


def test_vjp_of_tuple_outputs_with_tuple_v():
    x, tx = leaf_pair([1.0, 2.0])
    fn = lambda a: (a * a, a.sum())  # noqa: E731
    out, g = tg.vjp(fn, x, (tg.tensor([1.0, 1.0]), 2.0))
    t_out, tgr = F.vjp(fn, tx, (torch.ones(2, dtype=torch.float64),
                                torch.tensor(2.0, dtype=torch.float64)))
    np.testing.assert_allclose(g.data, [4.0, 6.0])
    assert_same((out, g), (t_out, tgr))
    # Tuple inputs too: one gradient per input.
    y, ty = leaf_pair(3.0)
    fn2 = lambda a, b: (a * b, (a * a).sum() * b)  # noqa: E731
    v = (np.array([0.5, -1.0]), 2.0)
    ours = tg.vjp(fn2, (x, y), v)
    theirs = F.vjp(fn2, (tx, ty), tuple(torch.tensor(e, dtype=torch.float64) for e in v))
    assert_same(ours, theirs)


def test_vjp_single_entry_forms_as_torch():
    x, tx = leaf_pair([1.0, 2.0])
    one = torch.tensor(1.0, dtype=torch.float64)
    # A tuple of one output, v omitted or a bare Tensor; one output, v a tuple of one.
    assert_same(tg.vjp(lambda a: ((a * a).sum(),), x), F.vjp(lambda a: ((a * a).sum(),), tx))
    assert_same(tg.vjp(lambda a: ((a * a).sum(),), x, tg.tensor(1.0)),
                F.vjp(lambda a: ((a * a).sum(),), tx, one))
    assert_same(tg.vjp(lambda a: (a * a).sum(), x, (tg.tensor(1.0),)),
                F.vjp(lambda a: (a * a).sum(), tx, (one,)))


def test_vjp_checks_v_against_the_outputs():
    x = tg.Tensor([1.0, 2.0])
    fn = lambda a: (a * a, a.sum())  # noqa: E731
    with pytest.raises(ValueError, match=r"vjp: v must be a tuple with one entry per output"):
        tg.vjp(fn, x, (np.ones(2),))
    with pytest.raises(ValueError, match=r"vjp: v\[0\] has shape \(3,\) but output 0 has shape"):
        tg.vjp(fn, x, (np.ones(3), 1.0))
    with pytest.raises(RuntimeError, match="vjp: v can be omitted only"):
        tg.vjp(fn, x)
    with pytest.raises(RuntimeError, match=r"vjp: v can be omitted only .* shapes \(2,\)"):
        tg.vjp(lambda a: a * a, x)


@pytest.mark.parametrize("value", [[2.0], 2.0, [[2.0]]], ids=["(1,)", "scalar", "(1,1)"])
def test_hvp_v_omitted_for_one_element(value):
    x, tx = leaf_pair(value)
    fn = lambda a: (a * a * a).sum()  # noqa: E731
    out, hv = tg.hvp(fn, x)
    np.testing.assert_allclose(np.asarray(hv.data).reshape(-1), [12.0])
    assert_same((out, hv), F.hvp(fn, tx), grad_flags=False)
    assert_same(tg.hvp(fn, (x,))[1], F.hvp(fn, (tx,))[1])  # a tuple of one input


def test_hvp_v_omitted_needs_one_input_with_one_element():
    fn = lambda a: (a * a * a).sum()  # noqa: E731
    with pytest.raises(RuntimeError, match=r"hvp: v can be omitted only .* shapes \(2,\)"):
        tg.hvp(fn, tg.Tensor([2.0, 1.0]))
    with pytest.raises(RuntimeError, match="hvp: v can be omitted only"):
        tg.hvp(lambda a, b: a * a * b, (tg.Tensor(2.0), tg.Tensor(1.0)))
    with pytest.raises(RuntimeError):  # torch refuses both too
        F.hvp(lambda a, b: a * a * b, (torch.tensor(2.0), torch.tensor(1.0)))


def test_hvp_with_tuple_inputs_and_tuple_v():
    x, tx = leaf_pair([0.5, -1.0])
    y, ty = leaf_pair(1.5)
    fn = lambda a, b: (a * a * b).sum() * b + (a * a * a).sum()  # noqa: E731
    v = (np.array([1.0, 2.0]), -0.5)
    ours = tg.hvp(fn, (x, y), v)
    theirs = F.hvp(fn, (tx, ty), tuple(torch.tensor(e, dtype=torch.float64) for e in v))
    assert_same(ours, theirs)
    with pytest.raises(ValueError, match=r"hvp: v must be a tuple with one entry per input \(2"):
        tg.hvp(fn, (x, y), (np.ones(2),))


# ---- strict=True: raises where torch raises, same values where it does not ----

def strict_cases(m):
    x = [1.0, 2.0]
    const = tg.tensor if m is tg else (lambda d: torch.tensor(d, dtype=torch.float64))
    return [
        ("jacobian", lambda a: (a * a, a.sum()), x, {}),
        ("jacobian", lambda a, b: (a * 2.0, b * a), (x, x), {}),  # output 0 ignores input 1
        ("jacobian", lambda a: (a * a, const([1.0, 1.0])), x, {}),
        ("jacobian", lambda a: a * 2.0, x, {"create_graph": True}),  # linear: constant J
        ("jacobian", lambda a: a * a, x, {"create_graph": True}),
        ("vjp", lambda a: (a * a, a.sum()), x, {"v": ([1.0, 1.0], 2.0)}),
        ("vjp", lambda a, b: a * 3.0, (1.0, 2.0), {}),
        ("vjp", lambda a: (a * 2.0).sum(), x, {"create_graph": True}),
        ("hvp", lambda a: (a * a * a).sum(), x, {"v": [1.0, 1.0]}),
        ("hvp", lambda a: (a * 2.0).sum(), x, {"v": [1.0, 1.0]}),  # linear
        ("hvp", lambda a: (a * a).sum(), x, {"v": [1.0, 1.0], "create_graph": True}),
        ("hvp", lambda a, b: a * a * a, (1.0, 2.0), {"v": (1.0, 2.0)}),  # b unused
        ("hvp", lambda a: (a * a * a).sum(), [2.0], {}),  # v omitted
        ("hessian", lambda a: (a * a).sum(), x, {}),
        ("hessian", lambda a: (a * a).sum(), x, {"create_graph": True}),
        ("hessian", lambda a: (a * 2.0).sum(), x, {}),
        ("hessian", lambda a, b: a * a * a + b * b * b, (1.0, 2.0), {}),  # separable
        ("hessian", lambda a, b: a * a * a * b, (1.0, 2.0), {}),
    ]


def _call(lib, m, name, fn, inputs, kwargs):
    def conv(e):  # constants, as torch.tensor makes them
        if m is torch:
            return torch.tensor(e, dtype=torch.float64)
        return tg.tensor(e)

    ins = tuple(conv(e) for e in inputs) if isinstance(inputs, tuple) else conv(inputs)
    kwargs = dict(kwargs)
    if "v" in kwargs:
        v = kwargs.pop("v")
        v = tuple(conv(e) for e in v) if isinstance(v, tuple) else conv(v)
        return getattr(lib, name)(fn, ins, v, strict=True, **kwargs)
    return getattr(lib, name)(fn, ins, strict=True, **kwargs)


@pytest.mark.parametrize("case", range(len(strict_cases(torch))))
def test_strict_matches_torch(case):
    name, fn_t, inputs, kwargs = strict_cases(torch)[case]
    fn_o = strict_cases(tg)[case][1]
    try:
        theirs = _call(F, torch, name, fn_t, inputs, kwargs)
    except RuntimeError:
        with pytest.raises(RuntimeError, match=f"^{name}: .*strict=True"):
            _call(tg, tg, name, fn_o, inputs, kwargs)
        return
    assert_same(_call(tg, tg, name, fn_o, inputs, kwargs), theirs, grad_flags=False)


def test_strict_names_the_output_and_the_input():
    x = tg.Tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="jacobian: output 0 does not depend on input 1"):
        tg.jacobian(lambda a, b: (a * 2.0, b * a), (x, x), strict=True)
    with pytest.raises(RuntimeError, match="jacobian: output 1 of the function does not require"):
        tg.jacobian(lambda a: (a * a, tg.tensor([1.0])), x, strict=True)


# ---- errors ----

def test_errors_name_the_helper_and_what_to_do():
    x = tg.Tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="jacobian: the function must return a Tensor or a tuple"):
        tg.jacobian(lambda a: 1.0, x)
    with pytest.raises(TypeError, match=r"vjp: .* output 1 is float"):
        tg.vjp(lambda a: (a * a, 2.0), x, (np.ones(2), 1.0))
    with pytest.raises(RuntimeError, match=r"hessian: .* single element, got a tuple of 1"):
        tg.hessian(lambda a: ((a * a).sum(),), x)
    with pytest.raises(RuntimeError, match=r"hvp: .* single element, got shape \(2,\)"):
        tg.hvp(lambda a: a * a, x, np.ones(2))
    with pytest.raises(ValueError, match=r"hvp: v has shape \(3,\) but the input has shape"):
        tg.hvp(lambda a: (a * a).sum(), x, np.ones(3))
    with pytest.raises(ValueError, match="jacobian: inputs is empty"):
        tg.jacobian(lambda: tg.Tensor(1.0), ())


def test_without_create_graph_results_are_constants_and_inputs_untouched():
    x = tg.Tensor([1.0, 2.0])
    (jx, jy), j_sum = tg.jacobian(lambda a, b: (a * b, (a * b).sum()), (x, x))
    assert not any(t.requires_grad for t in (jx, jy, j_sum[0], j_sum[1]))
    np.testing.assert_allclose(jx.data, np.diag([1.0, 2.0]))
    (out, _), g = tg.vjp(lambda a: (a * a, a.sum()), x, (np.ones(2), 1.0))
    assert not out.requires_grad and not g.requires_grad
    assert x.grad is None


# ---- jvp ----

@pytest.mark.parametrize("value", [[0.5, -1.2, 2.0], 0.7], ids=["array", "scalar"])
def test_jvp_of_tuple_inputs_and_outputs_matches_torch(value):
    x, tx = leaf_pair(value)
    z, tz = leaf_pair((np.asarray(value) * 0.5 + 0.3).tolist())
    v = (np.full(np.shape(value), 0.25), np.full(np.shape(value), -2.0))
    ours = tg.jvp(tuple_fn(tg), (x, z), v)
    theirs = F.jvp(tuple_fn(torch), (tx, tz), tuple(torch.tensor(e) for e in v))
    assert_same(ours, theirs)


def test_jvp_v_omitted_for_one_element_and_refused_otherwise():
    ours = tg.jvp(lambda a: a ** 3, tg.Tensor(2.0))
    theirs = F.jvp(lambda a: a ** 3, torch.tensor(2.0, dtype=torch.float64))
    assert_same(ours, theirs)
    with pytest.raises(RuntimeError, match="v can be omitted only"):
        tg.jvp(lambda a: a * a, tg.Tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="v has shape"):
        tg.jvp(lambda a: a * a, tg.Tensor([1.0, 2.0]), v=[1.0, 2.0, 3.0])


def test_jvp_through_an_output_that_does_not_depend_on_the_input_is_zero():
    ours = tg.jvp(lambda a: (a * 2.0, tg.tensor([5.0, 6.0])), tg.Tensor([1.0, 2.0]), v=[1.0, 1.0])
    theirs = F.jvp(lambda a: (a * 2.0, torch.tensor([5.0, 6.0], dtype=torch.float64)),
                   torch.tensor([1.0, 2.0], dtype=torch.float64),
                   torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert_same(ours, theirs, grad_flags=False)
    with pytest.raises(RuntimeError, match="strict=True"):
        tg.jvp(lambda a: tg.tensor([5.0, 6.0]), tg.Tensor([1.0, 2.0]), v=[1.0, 1.0], strict=True)
