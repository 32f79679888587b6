"""tapegrad: reverse-mode automatic differentiation for numpy users, with a C++ tape.

Example:
    >>> import tapegrad as tg
    >>> tg.clear_history()
    >>> x = tg.Tensor.create(2.0, "x")
    >>> y = tg.Tensor.create(5.0, "y")
    >>> f = tg.log(x) + x * y - tg.sin(y)
    >>> tg.compute_gradients(f, [x, y])[0]
    5.5
"""

from .functional import (
    abs,
    add,
    cos,
    divide,
    exp,
    log,
    multiply,
    negative,
    power,
    relu,
    sigmoid,
    sin,
    sqrt,
    subtract,
    tan,
    tanh,
)
from .gradcheck import GradcheckError, gradcheck
from .history import (
    OperationRecord,
    clear_history,
    compute_gradients,
    operation_history,
)
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "GradcheckError",
    "OperationRecord",
    "Tensor",
    "abs",
    "add",
    "clear_history",
    "compute_gradients",
    "cos",
    "divide",
    "exp",
    "gradcheck",
    "log",
    "multiply",
    "negative",
    "operation_history",
    "power",
    "relu",
    "sigmoid",
    "sin",
    "sqrt",
    "subtract",
    "tan",
    "tanh",
]
