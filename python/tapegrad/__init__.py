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

# The modules form layers, each importing only from those below it, so that any
# module can be imported first (tests/test_package.py checks the graph is acyclic):
#
#   __init__          imports every module, then wires them together, once (below)
#   compiled          compile: a tape recorded once, replayed natively (csrc/replay.hpp)
#   functional_api    value_and_grad
#   gradcheck         gradcheck, gradgradcheck
#   autograd          grad, no_grad, Function, Tape, jacobian and the other helpers
#   history, viz      the seed's OperationRecord and operation_history; DOT graphs
#   tensor            Tensor: the native _core.TensorBase with Python's methods on top
#   numpy_interop     numpy's calls on Tensors, dispatched to the catalogue's functions
#   the ops           functions of Tensors or plain values, which know a Tensor by its
#                     native type, TensorBase, and never import tensor.py. Among them
#                     (x <- y: y imports x): array_ops <- shapes <- indexing, reductions;
#                     array_ops <- products <- scipy.signal; array_ops <- linalg <-
#                     scipy.stats; special_functions <- scipy.special; scipy.linalg;
#                     functional
#   catalogue, _args  the op table's Python side; argument handling shared by the ops
#   _core             the native extension: TensorBase, the tape, the ops, the sweep
#
# (_stack and _sylvester stand apart: the native core imports them when it needs them.)
from . import (
    array_ops,
    catalogue,
    functional,
    indexing,
    linalg,  # numpy.linalg's functions (tapegrad.linalg.inv, ...)
    numpy_interop,
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
    jvp,
    no_grad,
    set_detect_anomaly,
    set_grad_enabled,
    tensor,
    vjp,
)
from .compiled import CompiledFunction, TraceError, TraceWarning, compile
from .functional_api import value_and_grad
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .history import (
    OperationRecord,
    clear_history,
    compute_gradients,
    operation_history,
)
from .tensor import Tensor, install_classes

# The wiring, here only and in this order: the core builds Tensors; the catalogue
# takes each op module's declarations (Note [Catalogue] in csrc/catalogue.hpp), in
# an order that fixes the catalogue's; Tensor gets each op's method; numpy's calls
# reach the core; tapegrad gets every function of the catalogue whose home it is.
install_classes()
catalogue.register(array_ops, shapes, indexing, linalg, products, reductions,
                   special_functions, scipy.linalg, scipy.signal, scipy.special, scipy.stats)
catalogue.install_methods(Tensor)
numpy_interop.install_dispatch()
del array_ops, functional, indexing, install_classes, products, reductions, shapes
del special_functions
globals().update(catalogue.exports("tapegrad"))

# The one place the version is written: the build reads it from here (pyproject.toml).
__version__ = "0.1.0"

__all__ = [
    "CompiledFunction",
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "OperationRecord",
    "Tape",
    "Tensor",
    "TraceError",
    "TraceWarning",
    "as_tensor",
    "clear_history",
    "compile",
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
    "jvp",
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
