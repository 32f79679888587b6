"""Every op with its closed-form derivative and a domain to test it on.

Unary: name -> (numpy forward, derivative f'(a), (low, high)).
Binary: name -> (numpy forward, (df/da, df/db), (low, high) for a, (low, high) for b).
"""

import numpy as np

UNARY = {
    "negative": (np.negative, lambda a: -np.ones_like(a), (-2, 2)),
    "abs": (np.abs, np.sign, (-2, 2)),
    "exp": (np.exp, np.exp, (-2, 2)),
    "log": (np.log, lambda a: 1 / a, (0.2, 3)),
    "sqrt": (np.sqrt, lambda a: 0.5 / np.sqrt(a), (0.2, 3)),
    "sin": (np.sin, np.cos, (-3, 3)),
    "cos": (np.cos, lambda a: -np.sin(a), (-3, 3)),
    "tan": (np.tan, lambda a: 1 / np.cos(a) ** 2, (-1.2, 1.2)),
    "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2, (-2, 2)),
    "sigmoid": (
        lambda a: 1 / (1 + np.exp(-a)),
        lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2,
        (-4, 4),
    ),
    "relu": (lambda a: np.maximum(a, 0), lambda a: (a > 0).astype(float), (-2, 2)),
}

BINARY = {
    "add": (np.add, (lambda a, b: np.ones_like(a * b), lambda a, b: np.ones_like(a * b)),
            (-2, 2), (-2, 2)),
    "subtract": (np.subtract, (lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b)),
                 (-2, 2), (-2, 2)),
    "multiply": (np.multiply, (lambda a, b: b + 0 * a, lambda a, b: a + 0 * b), (-2, 2), (-2, 2)),
    "divide": (np.divide, (lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b**2), (-2, 2), (0.5, 2)),
    "power": (np.power, (lambda a, b: b * a ** (b - 1), lambda a, b: a**b * np.log(a)),
              (0.3, 2), (-2, 2)),
}
