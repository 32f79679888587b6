"""The seed's own code as written, for the scalar workload's "seed's code as written" row.

A transcription of the founding design: every op written as its `multiply` is (the
forward value, one backward closure returning the input gradients, an `OperationRecord`
appended to the global `operation_history`), on Tensors only (constants are made into
Tensors, as seed code writes them), no broadcasting or dtype rules. It sits beside
`tapegrad.reference`, which keeps this design with the seed's whole surface, so that the
ratios against the reference can be read against the seed itself.
"""

import math

import numpy as np


class Tensor:
    _counter = 0

    def __init__(self, data, label=None):
        self.data = data
        self.label = label if label is not None else f"tensor_{Tensor._counter}"
        Tensor._counter += 1

    def __add__(self, other):
        return add(self, _tensor(other))

    def __radd__(self, other):
        return add(_tensor(other), self)

    def __sub__(self, other):
        return subtract(self, _tensor(other))

    def __mul__(self, other):
        return multiply(self, _tensor(other))

    def __rmul__(self, other):
        return multiply(_tensor(other), self)

    def __truediv__(self, other):
        return divide(self, _tensor(other))

    def __neg__(self):
        return negative(self)


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


class OperationRecord:
    def __init__(self, inputs, outputs, backward_func):
        self.input_keys = inputs
        self.output_keys = outputs
        self.backward_fn = backward_func


operation_history = []


def clear_history():
    operation_history.clear()
    Tensor._counter = 0


def multiply(a, b):
    result = Tensor(a.data * b.data)

    def backward(grad_output):
        return [grad_output * b.data, grad_output * a.data]

    operation_history.append(OperationRecord([a.label, b.label], [result.label], backward))
    return result


def add(a, b):
    result = Tensor(a.data + b.data)

    def backward(grad_output):
        return [grad_output, grad_output]

    operation_history.append(OperationRecord([a.label, b.label], [result.label], backward))
    return result


def subtract(a, b):
    result = Tensor(a.data - b.data)

    def backward(grad_output):
        return [grad_output, -grad_output]

    operation_history.append(OperationRecord([a.label, b.label], [result.label], backward))
    return result


def divide(a, b):
    result = Tensor(a.data / b.data)

    def backward(grad_output):
        return [grad_output / b.data, -grad_output * a.data / (b.data * b.data)]

    operation_history.append(OperationRecord([a.label, b.label], [result.label], backward))
    return result


def negative(a):
    result = Tensor(-a.data)

    def backward(grad_output):
        return [-grad_output]

    operation_history.append(OperationRecord([a.label], [result.label], backward))
    return result


def log(a):
    result = Tensor(math.log(a.data))

    def backward(grad_output):
        return [grad_output / a.data]

    operation_history.append(OperationRecord([a.label], [result.label], backward))
    return result


def exp(a):
    result = Tensor(math.exp(a.data))

    def backward(grad_output):
        return [grad_output * result.data]

    operation_history.append(OperationRecord([a.label], [result.label], backward))
    return result


def sin(a):
    result = Tensor(math.sin(a.data))

    def backward(grad_output):
        return [grad_output * math.cos(a.data)]

    operation_history.append(OperationRecord([a.label], [result.label], backward))
    return result


def tanh(a):
    result = Tensor(math.tanh(a.data))

    def backward(grad_output):
        return [grad_output * (1 - result.data * result.data)]

    operation_history.append(OperationRecord([a.label], [result.label], backward))
    return result


def compute_gradients(target, sources):
    grads = {target.label: np.ones_like(target.data)}
    for record in reversed(operation_history):
        if not any(k in grads for k in record.output_keys):
            continue
        output_grads = [grads.get(k, 0.0) for k in record.output_keys]
        for key, g in zip(record.input_keys, record.backward_fn(*output_grads)):
            grads[key] = grads[key] + g if key in grads else g
    return [grads.get(s.label, 0.0) for s in sources]
