"""detect_anomaly (Note [Anomaly mode]): the first NaN or inf a backward produces
raises, naming the op, its label and the line of this file that recorded it."""

import threading

import numpy as np
import pytest

import tapegrad as tg

from functions import Double


def _line_of(text):
    """The line of this file that holds `text` (the line an op was recorded at)."""
    with open(__file__) as f:
        return next(k for k, line in enumerate(f, 1) if text in line and "_line_of" not in line)


def test_sqrt_at_zero_inside_a_log():
    x = tg.Tensor(0.0, "x")
    with tg.detect_anomaly():
        y = tg.log(tg.sqrt(x))  # the log's backward divides by sqrt(0)
        with pytest.raises(RuntimeError) as caught:
            y.backward()
    message = str(caught.value)
    assert "backward of log" in message and "gave inf" in message
    assert f"test_anomaly.py:{_line_of('y = tg.log(tg.sqrt(x))')}" in message
    assert f"'{y.label}'" in message


def test_nan_from_zero_times_infinity_names_the_first_op_that_made_it():
    a = tg.Tensor(np.array([1.0, 0.0, 4.0]), "a")
    with tg.detect_anomaly():
        s = tg.sqrt(a)
        loss = (s * 0.0 + a).sum()  # sqrt's gradient: 0 / (2 * 0) at a[1] is nan
        with pytest.raises(RuntimeError, match=r"backward of sqrt .*gave nan .*input 'a'") as caught:
            tg.grad(loss, a)
    assert f"test_anomaly.py:{_line_of('s = tg.sqrt(a)')}" in str(caught.value)


def test_every_sweep_is_checked():
    x = tg.Tensor(np.array([0.0, 1.0]), "x")
    with tg.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        y = tg.sum(tg.log(x))
        with pytest.raises(RuntimeError, match="backward of log"):
            tg.compute_gradients(y, [x])
        with pytest.raises(RuntimeError, match="backward of log"):
            tg.grad(y, x, create_graph=True)
        with pytest.raises(RuntimeError, match="backward of log"):
            y.backward(create_graph=True)
        z = tg.sum(Double.apply(x) * tg.log(x))
        with pytest.raises(RuntimeError, match=r"backward of (mul|log)"):
            z.backward()
        m = tg.matmul(tg.Tensor(np.array([[np.inf, 1.0]])), x)
        with pytest.raises(RuntimeError, match="backward of matmul"):
            tg.grad(m.sum(), x)
    # The tape stays usable: a finite gradient after the errors.
    w = tg.Tensor(2.0)
    assert tg.grad(w * w, w)[0].data == 4.0


def test_a_function_that_returns_nan_is_named():
    class Bad(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2.0

        @staticmethod
        def backward(ctx, g):
            return g * np.nan

    x = tg.Tensor(1.0, "x")
    with tg.detect_anomaly():
        y = Bad.apply(x) * 3.0
        with pytest.raises(RuntimeError, match=r"backward of Bad .*gave nan .*input 'x'"):
            y.backward()


def test_outside_the_mode_nothing_is_recorded_or_checked():
    x = tg.Tensor(0.0)
    y = tg.log(tg.sqrt(x))
    assert tg._core.tape_stats()["origins"] == 0
    y.backward()  # no error: inf is a value, as in PyTorch
    assert x.grad.data == np.inf
    assert not tg.is_anomaly_enabled()
    with tg.detect_anomaly():
        assert tg.is_anomaly_enabled()
        tg.sqrt(x)
        assert tg._core.tape_stats()["origins"] == 1
    assert not tg.is_anomaly_enabled()


def test_the_mode_is_per_thread_and_a_decorator():
    seen = {}

    @tg.detect_anomaly()
    def on():
        seen["here"] = tg.is_anomaly_enabled()
        thread = threading.Thread(target=lambda: seen.update(there=tg.is_anomaly_enabled()))
        thread.start()
        thread.join()

    on()
    assert seen == {"here": True, "there": False}
    assert not tg.is_anomaly_enabled()
    previous = tg.set_detect_anomaly(True)
    assert previous is False and tg.is_anomaly_enabled()
    tg.set_detect_anomaly(False)
