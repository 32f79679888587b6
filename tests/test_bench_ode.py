"""bench/workloads/ode.py: every library's RK4 gradient agrees, and with finite differences."""

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="module")
def ode():
    """The workload module, imported as bench/compare.py imports it (bench/ on sys.path)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("workloads.ode")


def finite_differences(ode, n_steps, eps=1e-6):
    """Central differences of the loss on plain floats, parameter by parameter."""
    loss = ode.loss_of(n_steps)
    grads = []
    for i, p in enumerate(ode.PARAMETERS):
        up, down = list(ode.PARAMETERS), list(ode.PARAMETERS)
        up[i], down[i] = p + eps * abs(p), p - eps * abs(p)
        grads.append((loss(up) - loss(down)) / (2 * eps * abs(p)))
    return grads


@pytest.mark.parametrize("n_steps", [1, 7, 40])
@pytest.mark.parametrize("library", ["tapegrad", "tapegrad compiled", "reference", "PyTorch",
                                     "HIPS autograd"])
def test_each_library_gives_the_floors_value_and_the_finite_difference_gradient(
        ode, library, n_steps):
    peer = {"PyTorch": "torch", "HIPS autograd": "autograd"}.get(library)
    if peer is not None:
        pytest.importorskip(peer)
    step = ode.LIBRARIES[library](n_steps)
    value, grads = step()
    want_value, no_grads = ode.LIBRARIES[ode.PLAIN](n_steps)()
    assert no_grads == []
    assert value == pytest.approx(want_value, rel=1e-13)
    assert grads == pytest.approx(finite_differences(ode, n_steps), rel=1e-6)
    assert step() == (value, grads)  # a second call (a compiled replay) answers the same


@pytest.mark.parametrize("n_steps", [7, 40])
def test_the_gradients_agree_across_libraries_to_rounding(ode, n_steps):
    """What bench/compare.py checks in every run (1e-8), tighter: the libraries compute the
    same float operations in the same order."""
    want = ode.LIBRARIES["tapegrad"](n_steps)()
    for library in ("tapegrad compiled", "reference", "PyTorch", "HIPS autograd"):
        peer = {"PyTorch": "torch", "HIPS autograd": "autograd"}.get(library)
        if peer is not None and importlib.util.find_spec(peer) is None:
            continue
        value, grads = ode.LIBRARIES[library](n_steps)()
        assert value == pytest.approx(want[0], rel=1e-14), library
        assert grads == pytest.approx(want[1], rel=1e-12), library


def test_the_rk4_step_is_fourth_order(ode):
    """Halving the step divides the error at the horizon by about 2**4 (against a fine
    reference run): the integrator the bench differentiates is RK4 as written."""
    fine = ode.loss_of(4000)(ode.PARAMETERS)
    errors = [abs(ode.loss_of(n)(ode.PARAMETERS) - fine) for n in (50, 100)]
    assert 12 < errors[0] / errors[1] < 20


def test_the_child_reports_time_first_call_value_and_gradient(ode):
    out = ode.child("tapegrad compiled", ["20"])
    result = out["20"]
    assert result["seconds"] > 0 and result["first_call"] > 0
    value, grads = ode.LIBRARIES["tapegrad"](20)()
    assert result["value"] == pytest.approx(value, rel=1e-14)
    assert result["grads"] == [pytest.approx(grads, rel=1e-14)]
