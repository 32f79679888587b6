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

from . import (
    array_ops,
    catalogue,
    functional,
    indexing,
    linalg,  # numpy.linalg's functions (tapegrad.linalg.inv, ...)
    numpy_interop,  # noqa: F401  (sets up numpy's dispatch)
    products,
    reductions,
    scipy,  # scipy's (tapegrad.scipy.linalg.expm, ...); does not import scipy
    shapes,
    special_functions,
    viz,
)
from .autograd import (
    Function,
    FunctionCtx,
    Tape,
    as_tensor,
    detect_anomaly,
    enable_grad,
    grad,
    hessian,
    hvp,
    is_anomaly_enabled,
    is_grad_enabled,
    jacobian,
    no_grad,
    set_detect_anomaly,
    set_grad_enabled,
    tensor,
    vjp,
)
from .functional_api import value_and_grad
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .history import (
    OperationRecord,
    clear_history,
    compute_gradients,
    operation_history,
)
from .tensor import Tensor

# The ops: every function of the catalogue (Note [Catalogue] in csrc/catalogue.hpp)
# whose home is tapegrad itself, and each op's Tensor method.
del array_ops, functional, indexing, products, reductions, shapes, special_functions
globals().update(catalogue.exports("tapegrad"))
catalogue.install_methods(Tensor)

__version__ = "0.1.0"

__all__ = [
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "OperationRecord",
    "Tape",
    "Tensor",
    "as_tensor",
    "clear_history",
    "compute_gradients",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "hessian",
    "hvp",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "jacobian",
    "linalg",
    "no_grad",
    "operation_history",
    "scipy",
    "set_detect_anomaly",
    "set_grad_enabled",
    "tensor",
    "value_and_grad",
    "viz",
    "vjp",
]
__all__ += sorted(catalogue.exports("tapegrad"))
