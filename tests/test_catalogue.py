"""The op catalogue (Note [Catalogue] in csrc/catalogue.hpp): every entry is reachable as
its function, its method and its numpy call, is in the stub and __all__, has test data,
and differentiates (finite differences everywhere, PyTorch where installed)."""

import importlib
import re
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import catalogue

import opcatalog
from opcatalog import ARRAY, BINARY, TIES, UNARY, one_value

catalogue.load_all()  # every module imported, so the tests walk them all (import tapegrad registered every op)
OPS = sorted(catalogue.OPS)
ELEMENTWISE = [f for f in OPS if catalogue.OPS[f].kind == "elementwise"]
OTHERS = [f for f in OPS if catalogue.OPS[f].kind != "elementwise"]


def function_of(name):
    target = tg
    for part in name.split("."):
        target = getattr(target, part)
    return target


def sample_inputs(name, rng, dtype=np.float64):
    """Input arrays and (args, kwargs) builder for any op of the catalogue."""
    if opcatalog.needs_scipy(name):
        pytest.importorskip("scipy")
    op = catalogue.OPS[name]
    if op.kind == "elementwise":
        ranges = [UNARY[name][2]] if name in UNARY else (
            [BINARY[name][2], BINARY[name][3]] if name in BINARY else [(-2, 2), (-2, 2)])
        arrays = [rng.uniform(lo, hi, size=(3, 4)).astype(dtype) for lo, hi in ranges]
        if name in TIES:
            arrays[1] = arrays[0] + rng.choice([-0.5, 0.5], size=(3, 4)).astype(dtype)
        return arrays, lambda xs: (tuple(xs), {})
    sample = ARRAY[name]
    arrays = [rng.uniform(sample.low, sample.high, size=s).astype(dtype) for s in sample.shapes]
    return arrays, sample.call


def values(result):
    if isinstance(result, (list, tuple)):
        return [values(r) for r in result]
    return np.asarray(result.data if isinstance(result, tg.Tensor) else result)


@pytest.mark.parametrize("name", OPS)
def test_every_op_has_test_data(name):
    op = catalogue.OPS[name]
    known = (UNARY.keys() | BINARY.keys() | TIES) if op.kind == "elementwise" else ARRAY.keys()
    assert name in known, f"{name}: add its test data to tests/opcatalog.py"


@pytest.mark.parametrize("name", OPS)
def test_function_is_exported_and_documented(name):
    op = catalogue.OPS[name]
    fn = function_of(name)
    assert fn is catalogue.IMPLEMENTATIONS[name]
    if "." not in name:
        assert name in tg.__all__
    assert fn.__doc__.startswith(op.doc)
    assert op.doc.strip() and "\n" not in op.doc


def test_native_functions_are_in_the_stub():
    # The elementwise functions are made from the table at import: the stub declares
    # them all through a module __getattr__, so adding an op needs no stub line. Every
    # other native function is declared by name.
    stub = (Path(tg.__file__).parent / "_core.pyi").read_text()
    declared = set(re.findall(r"^def (\w+)\(", stub, re.M))
    assert "__getattr__" in declared and "CATALOGUE:" in stub
    from tapegrad import _core
    elementwise = {op.function for op in catalogue.OPS.values() if op.kind == "elementwise"}
    others = {name for name in dir(_core) if callable(getattr(_core, name))
              and not name.startswith("_") and name not in elementwise and name[0].islower()}
    assert others <= declared, f"add to _core.pyi: {sorted(others - declared)}"


@pytest.mark.parametrize("name", [f for f in OPS if catalogue.OPS[f].method])
def test_method_gives_the_function_value(name, rng):
    op = catalogue.OPS[name]
    arrays, call = sample_inputs(name, rng)
    tensors = [tg.Tensor(a) for a in arrays]
    args, kwargs = call(tensors)
    assert isinstance(args[0], tg.Tensor), f"{name}: the method's self is the first argument"
    by_method = getattr(args[0], op.method)(*args[1:], **kwargs)
    by_function = function_of(name)(*args, **kwargs)
    np.testing.assert_array_equal(values(by_method), values(by_function))
    assert by_method.requires_grad


def numpy_callables(name):
    out = []
    for path in catalogue.OPS[name].numpy:
        module, _, attribute = path.rpartition(".")
        if module.startswith("scipy"):
            pytest.importorskip(module)
        out.append((path, getattr(importlib.import_module(module), attribute)))
    return out


@pytest.mark.parametrize("name", [f for f in OPS if catalogue.OPS[f].numpy])
def test_numpy_call_records_the_op(name, rng):
    arrays, call = sample_inputs(name, rng)
    for path, numpy_fn in numpy_callables(name):
        tg.clear_history()
        tensors = [tg.Tensor(a) for a in arrays]
        args, kwargs = call(tensors)
        result = numpy_fn(*args, **kwargs)
        parts = result if isinstance(result, (list, tuple)) else [result]
        first = next((r for r in parts if isinstance(r, tg.Tensor)), None)  # slogdet: (sign, Tensor)
        assert isinstance(first, tg.Tensor) and first.requires_grad, path
        expected = numpy_fn(*call(arrays)[0], **call(arrays)[1])
        expected = expected if isinstance(expected, (list, tuple)) else [expected]
        assert len(parts) == len(expected), path
        for ours, theirs in zip(parts, expected):  # pieces, maybe of different shapes
            assert np.shape(values(ours)) == np.shape(values(theirs)), path
            np.testing.assert_allclose(values(ours), values(theirs), rtol=1e-12, err_msg=path)


@pytest.mark.parametrize("name", OTHERS)
def test_gradients_match_finite_differences(name, rng):
    arrays, call = sample_inputs(name, rng)

    def f(*xs):
        args, kwargs = call(list(xs))
        return one_value(function_of(name)(*args, **kwargs), tg.stack, tg.concatenate)

    assert tg.gradcheck(f, [tg.Tensor(a) for a in arrays])
    assert tg.gradgradcheck(f, [tg.Tensor(a) for a in arrays])


def _ours_and_torch(name, dtype, rng):
    """The op on sample inputs in tapegrad and in torch, and random output weights:
    (tensors, out, weights, torch inputs, torch out)."""
    torch = pytest.importorskip("torch")
    arrays, call = sample_inputs(name, rng, dtype)
    tensors = [tg.Tensor(a) for a in arrays]
    args, kwargs = call(tensors)
    out = one_value(function_of(name)(*args, **kwargs), tg.stack, tg.concatenate)
    weights = rng.uniform(size=out.shape).astype(dtype)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = ARRAY[name].torch(*theirs)
    expected = torch.stack(expected) if isinstance(expected, tuple) else expected
    return tensors, out, weights, theirs, expected


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", [f for f in OTHERS if ARRAY[f].torch])
def test_gradients_match_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    tensors, out, weights, theirs, expected = _ours_and_torch(name, dtype, rng)
    grads = tg.grad(out, tensors, grad_outputs=tg.Tensor(weights, requires_grad=False))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-5 if dtype == np.float32 else 1e-12)
    expected_grads = torch.autograd.grad(expected, theirs, torch.from_numpy(weights))
    for ours, theirs_grad in zip(grads, expected_grads):
        assert ours.data.dtype == dtype
        np.testing.assert_allclose(ours.data, theirs_grad.numpy(),
                                   rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", [f for f in OTHERS if ARRAY[f].torch])
def test_second_derivatives_match_torch(name, dtype, rng):
    """The derivative of <gradients, v> (a Hessian-vector product) against PyTorch's."""
    torch = pytest.importorskip("torch")
    tensors, out, weights, theirs, expected = _ours_and_torch(name, dtype, rng)
    vs = [rng.uniform(size=t.shape).astype(dtype) for t in tensors]
    # Weights that require grad keep the first gradients' history even where
    # they are linear in the inputs (the second derivative is then zero).
    w = tg.Tensor(weights)
    grads = tg.grad(out, tensors, grad_outputs=w, create_graph=True)
    contracted = tg.sum(tg.stack([tg.sum(gk * v) for gk, v in zip(grads, vs)]))
    second = tg.grad(contracted, tensors, allow_unused=True)

    tw = torch.tensor(weights, requires_grad=True)
    first = torch.autograd.grad(expected, theirs, tw, create_graph=True)
    total = sum((fk * torch.from_numpy(v)).sum() for fk, v in zip(first, vs))
    expected_second = torch.autograd.grad(total, theirs, allow_unused=True, materialize_grads=True)
    for ours, theirs_grad in zip(second, expected_second):
        ours = np.zeros_like(theirs_grad.numpy()) if ours is None else ours.data
        assert np.asarray(ours).dtype == dtype
        np.testing.assert_allclose(ours, theirs_grad.numpy(),
                                   rtol=1e-4 if dtype == np.float32 else 1e-11,
                                   atol=1e-5 if dtype == np.float32 else 1e-13)


def test_readme_op_table_is_current():
    readme = Path(__file__).parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("no source checkout")
    text = readme.read_text()
    assert catalogue.readme_with_table(text) == text, "regenerate it: python tools/op_table.py"
