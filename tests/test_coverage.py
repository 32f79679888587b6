"""What numpy users write, as listed in the design's coverage section (the functions HIPS
autograd differentiates): each is a catalogue entry that numpy's or scipy's function
dispatches to (or a tapegrad.scipy function, for scipy's Python-level functions), with
test data, so that test_catalogue checks it against finite differences and PyTorch to
second order; the non-differentiable ones return plain values."""

import pytest

import tapegrad as tg
from tapegrad import catalogue

import opcatalog

DIFFERENTIABLE = {
    "numpy": """abs fabs exp exp2 expm1 log log2 log10 log1p sqrt cbrt square reciprocal sin cos tan
        arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh deg2rad rad2deg degrees radians
        maximum minimum fmax fmin logaddexp logaddexp2 arctan2 hypot mod remainder fmod copysign
        float_power sinc clip where
        sum mean max min amax amin prod var std ptp average nansum nanmean cumsum cumprod diff trace
        reshape ravel transpose swapaxes moveaxis rollaxis expand_dims squeeze broadcast_to atleast_1d
        atleast_2d atleast_3d concatenate stack hstack vstack dstack column_stack append split
        array_split hsplit vsplit dsplit repeat tile roll rot90 flip fliplr flipud pad diag diagonal
        tril triu sort partition take take_along_axis select nan_to_num
        matmul dot vdot inner outer tensordot kron cross einsum convolve""",
    "numpy.linalg": "inv det slogdet solve cholesky eigh svd qr pinv norm matrix_power",
    "scipy.special": """erf erfc erfinv erfcinv gamma gammaln digamma polygamma expit logit xlogy
        xlog1py ndtr log_ndtr ndtri i0 i1 ive psi rgamma beta betaln logsumexp softmax log_softmax""",
    "scipy.linalg": "solve_triangular cho_solve expm sqrtm",
    "scipy.signal": "convolve",
}
VALUES_ONLY = """sign floor ceil rint trunc isfinite isnan argmax argmin argsort nonzero searchsorted
    zeros_like ones_like full_like shape ndim size""".split()

catalogue.load_all()
BY_PATH = {path: op for op in catalogue.OPS.values() for path in op.numpy}
TESTED = opcatalog.UNARY.keys() | opcatalog.BINARY.keys() | opcatalog.ARRAY.keys() | opcatalog.TIES


def _entry(path):
    """The catalogue entry numpy's or scipy's function `path` reaches: by dispatch, or,
    for scipy's Python-level functions (which call np.asarray), tapegrad.scipy's."""
    if path in BY_PATH:
        return BY_PATH[path]
    module, name = path.rsplit(".", 1)
    if module.startswith("scipy"):
        return catalogue.OPS.get(path) or catalogue.OPS.get(f"{module}.{name}") or (
            catalogue.OPS.get(name) if module == "scipy.special" else None)
    return None


@pytest.mark.parametrize("path", [f"{m}.{n}" for m, names in DIFFERENTIABLE.items() for n in names.split()])
def test_listed_function_records_and_is_tested(path):
    op = _entry(path)
    assert op is not None, f"{path}: no catalogue entry answers it"
    assert op.function in TESTED, f"{path} ({op.function}): no test data in tests/opcatalog.py"


@pytest.mark.parametrize("name", VALUES_ONLY)
def test_listed_values_only_function(name):
    assert f"numpy.{name}" in catalogue.VALUES_ONLY or name in catalogue.VALUES_ONLY


def test_operators_and_methods():
    t = tg.Tensor([[1.0, 2.0], [3.0, 4.0]])
    for result in (t + t, t - t, t * t, t / t, t ** 2, t % 1.5, t @ t, -t, tg.sigmoid(t), tg.relu(t)):
        assert isinstance(result, tg.Tensor)
    for method in ("astype", "ravel", "flatten", "reshape", "transpose", "cumsum", "clip", "trace"):
        assert callable(getattr(t, method)), method
