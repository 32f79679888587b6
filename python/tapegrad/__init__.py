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

from . import viz
from .array_ops import (
    broadcast_to,
    clip,
    concatenate,
    dot,
    einsum,
    expand_dims,
    flatten,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    outer,
    prod,
    reshape,
    softmax,
    split,
    squeeze,
    stack,
    std,
    sum,
    swapaxes,
    transpose,
    var,
    where,
)
from .autograd import (
    Function,
    FunctionCtx,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    tensor,
)
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
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "OperationRecord",
    "Tensor",
    "abs",
    "add",
    "broadcast_to",
    "clear_history",
    "clip",
    "compute_gradients",
    "concatenate",
    "cos",
    "divide",
    "dot",
    "einsum",
    "enable_grad",
    "exp",
    "expand_dims",
    "flatten",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "log",
    "log_softmax",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "multiply",
    "negative",
    "no_grad",
    "operation_history",
    "outer",
    "power",
    "prod",
    "relu",
    "reshape",
    "set_grad_enabled",
    "sigmoid",
    "sin",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "subtract",
    "sum",
    "swapaxes",
    "tan",
    "tanh",
    "tensor",
    "transpose",
    "var",
    "viz",
    "where",
]
