"""The PyTorch-style surface: grad modes, tapegrad.grad, tapegrad.tensor, Function.

``t.backward()`` and ``.grad`` live on Tensor (tensor.py); the sweep is native.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

import numpy as np

from . import _core
from .history import OperationRecord, _Keys
from .tensor import Tensor

F = TypeVar("F", bound=Callable[..., Any])


class _GradMode:
    """A context manager and decorator that sets this thread's grad mode."""

    _enabled: bool

    def __enter__(self) -> None:
        self._previous = _core.set_grad_enabled(self._enabled)

    def __exit__(self, *exc: Any) -> None:
        _core.set_grad_enabled(self._previous)

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Record nothing inside: ops on Tensors return constants (``requires_grad=False``).

    Per thread, as a context manager or a decorator. In-place updates of
    parameters (``w -= lr * w.grad``) belong inside it, as in PyTorch.

    Example:
        >>> import tapegrad as tg
        >>> w = tg.Tensor(1.0)
        >>> with tg.no_grad():
        ...     y = w * 2.0
        >>> y.requires_grad
        False
    """

    _enabled = False


class enable_grad(_GradMode):
    """Record again inside a ``no_grad`` block (context manager or decorator).

    Example:
        >>> import tapegrad as tg
        >>> with tg.no_grad(), tg.enable_grad():
        ...     y = tg.Tensor(1.0) * 2.0
        >>> y.requires_grad
        True
    """

    _enabled = True


def is_grad_enabled() -> bool:
    """Whether ops record on this thread. Example: ``tapegrad.is_grad_enabled()``."""
    return _core.is_grad_enabled()


def set_grad_enabled(mode: bool) -> bool:
    """Turn recording on or off for this thread; returns the previous mode.

    Example: ``previous = tapegrad.set_grad_enabled(False)``.
    """
    return _core.set_grad_enabled(bool(mode))


def tensor(data: Any, requires_grad: bool = False, label: str | None = None) -> Tensor:
    """A Tensor that is a constant unless ``requires_grad=True`` (``torch.tensor``'s default).

    Example:
        >>> import tapegrad as tg
        >>> tg.tensor([1.0, 2.0]).requires_grad
        False
    """
    return Tensor(data, label, requires_grad=requires_grad)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, as ``torch.autograd.grad``.

    Returns a tuple with one Tensor per input (None for an input the outputs do
    not use, when ``allow_unused=True``; otherwise that is a RuntimeError).
    Leaves' ``.grad`` is not touched. Unless ``retain_graph=True`` (which
    defaults to ``create_graph``), what the sweep traversed cannot be
    traversed again. With ``create_graph=True`` the gradients are Tensors with
    history, which can be differentiated again, to any order; a seed-style
    ``OperationRecord`` on the way raises RuntimeError (its backward is not
    recorded), a ``Function`` whose backward uses Tensor ops works.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor(3.0)
        >>> (g,) = tg.grad(x * x, x)
        >>> g.data
        6.0
        >>> (g,) = tg.grad(x * x * x, x, create_graph=True)
        >>> tg.grad(g, x)[0].data
        18.0
    """
    retain = create_graph if retain_graph is None else retain_graph
    return _core.grad(outputs, inputs, grad_outputs, bool(retain), allow_unused,
                      bool(create_graph))


class FunctionCtx:
    """What a Function's forward leaves for its backward (``ctx`` in both)."""

    def __init__(self, needs_input_grad: tuple) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep tensors (or arrays) for the backward, as ``ctx.saved_tensors``."""
        self.saved_tensors = tensors


class Function:
    """A custom op with its own backward, as ``torch.autograd.Function``.

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``
    and call ``MyOp.apply(*args)``. ``forward`` runs without recording and
    returns a Tensor, an array or a number (or a tuple of them); ``backward``
    gets one Tensor per output and returns one gradient per ``forward``
    argument (None for non-Tensors or no gradient). Its record appears in
    ``operation_history`` under the class's name. Under ``create_graph`` the
    backward runs on Tensors and records, so a backward written with Tensor
    ops can be differentiated again. Keep tensors for the backward with
    ``ctx.save_for_backward``: those do not keep their graph alive, while a
    recorded tensor stored as another ``ctx`` attribute keeps its records for
    as long as the Function's own record is on the tape.

    Example:
        >>> import tapegrad as tg
        >>> class Cube(tg.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         ctx.save_for_backward(x)
        ...         return x * x * x
        ...     @staticmethod
        ...     def backward(ctx, g):
        ...         (x,) = ctx.saved_tensors
        ...         return 3 * x * x * g
        >>> x = tg.Tensor(2.0)
        >>> Cube.apply(x).backward()
        >>> x.grad.data
        12.0
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> Any:
        raise NotImplementedError("a Function subclass defines forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Any) -> Any:
        raise NotImplementedError("a Function subclass defines backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args: Any) -> Any:
        """Run ``forward`` on ``args`` and record the op with ``backward`` as its gradient."""
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with no_grad():
            raw = cls.forward(ctx, *args)
        single = not isinstance(raw, tuple)
        record = _core.is_grad_enabled() and any(needs)
        raws = (raw,) if single else raw
        outputs = [Tensor(o.data if isinstance(o, Tensor) else o, requires_grad=record)
                   for o in raws]
        # A saved output is the recorded output, as in PyTorch: differentiating the
        # backward then goes back through this op.
        ctx.saved_tensors = tuple(
            next((out for r, out in zip(raws, outputs) if r is s), s) for s in ctx.saved_tensors)
        if record:
            inputs = [a for a in args if isinstance(a, Tensor)]
            tensor_args = tuple(isinstance(a, Tensor) for a in args)
            operation = OperationRecord(inputs, outputs, _backward_of(cls, ctx, tensor_args))
            operation.op = cls.__name__
            operation.graph_backward = _graph_backward_of(cls, ctx, tensor_args)
            keys = _Keys(operation)  # keys as the Tensors themselves
            # Note [Saved tensors]: the tape keeps the record, and so the ctx; recorded
            # tensors in it become handles that do not keep their records alive.
            ctx.saved_tensors = _core.append_record(keys, True, ctx.saved_tensors)
            keys.input_keys = keys.output_keys = operation._keys = None  # resolved: let go
        return outputs[0] if single else tuple(outputs)


def _per_tensor_arg(cls: type, result: Any, tensor_args: tuple) -> list:
    """A Function backward's result: one gradient per forward argument, kept for Tensors."""
    result = result if isinstance(result, tuple) else (result,)
    if len(result) != len(tensor_args):
        raise ValueError(
            f"{cls.__name__}.backward returned {len(result)} gradients for the "
            f"{len(tensor_args)} arguments of forward; return one per argument (None for none)")
    return [r for r, is_tensor in zip(result, tensor_args) if is_tensor]


# The closures hold which arguments were Tensors, not the arguments: the tape
# keeps them, and must not keep the inputs alive (Note [Saved tensors]).
def _backward_of(cls: type, ctx: FunctionCtx, tensor_args: tuple) -> Callable[..., list]:
    def backward_fn(*grads: Any) -> list:
        with no_grad():
            result = cls.backward(ctx, *(Tensor(g, requires_grad=False) for g in grads))
        return [r.data if isinstance(r, Tensor) else r
                for r in _per_tensor_arg(cls, result, tensor_args)]

    return backward_fn


def _graph_backward_of(cls: type, ctx: FunctionCtx, tensor_args: tuple) -> Callable[..., list]:
    """The backward for create_graph: on Tensors, recording, so it can be differentiated."""
    def graph_backward(*grads: Any) -> list:
        return _per_tensor_arg(cls, cls.backward(ctx, *grads), tensor_args)

    return graph_backward


# ---- torch.autograd.functional's helpers ----
#
# Each takes torch's signature. Without create_graph they differentiate fresh
# leaves made from the inputs (the caller's tensors are not touched) and return
# constants; with create_graph=True they differentiate the caller's tensors
# themselves and return Tensors with history, differentiable again.


def _as_inputs(inputs: Any, create_graph: bool) -> tuple[tuple, bool]:
    single = not isinstance(inputs, (tuple, list))
    items = (inputs,) if single else tuple(inputs)
    leaves = tuple(
        x if create_graph and isinstance(x, Tensor) and x.requires_grad
        else Tensor(x.data if isinstance(x, Tensor) else x)
        for x in items)
    return leaves, single


def _check_unused(grads: tuple, strict: bool, what: str) -> None:
    if strict and any(g is None for g in grads):
        k = next(i for i, g in enumerate(grads) if g is None)
        raise RuntimeError(f"{what}: the output does not depend on input {k} (strict=True)")


def _zeros_for(grads: tuple, leaves: tuple) -> tuple:
    """Each gradient, with zeros (a constant of the input's shape) for None."""
    return tuple(Tensor(np.zeros_like(leaf.data), requires_grad=False) if g is None else g
                 for g, leaf in zip(grads, leaves))


def _scalar_output(out: Any, what: str) -> Tensor:
    if not isinstance(out, Tensor) or np.size(out.data) != 1:
        got = np.shape(out.data) if isinstance(out, Tensor) else type(out).__name__
        raise RuntimeError(
            f"{what}: the function must return a Tensor with a single element, got {got}")
    return out


def _stacked(rows: list, shape: tuple) -> Tensor:
    """Rows of a Jacobian (Tensors) as one Tensor of `shape`, recorded when they have history."""
    if any(r.requires_grad for r in rows):
        from .array_ops import reshape, stack

        return reshape(stack(rows), shape)
    return Tensor(np.stack([np.asarray(r.data) for r in rows]).reshape(shape), requires_grad=False)


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """``(func(*inputs), v^T J)``, as ``torch.autograd.functional.vjp``.

    ``v`` has the output's shape (it may be omitted for a scalar output). The
    result has one gradient per input (a Tensor, or a tuple of them when
    ``inputs`` is a tuple). ``strict=True`` raises when the output does not
    depend on an input.

    Example:
        >>> import tapegrad as tg
        >>> out, g = tg.vjp(lambda x: x * x, tg.Tensor([1.0, 2.0]), v=[1.0, 1.0])
        >>> g.data
        array([2., 4.])
    """
    leaves, single = _as_inputs(inputs, create_graph)
    with enable_grad():
        out = func(*leaves)
        seed = None if v is None else (v if isinstance(v, Tensor) else np.asarray(v, dtype=float),)
        grads = _core.grad(out, leaves, seed, create_graph, True, create_graph)
    _check_unused(grads, strict, "vjp")
    grads = _zeros_for(grads, leaves)
    return (out if create_graph else out.detach()), grads[0] if single else grads


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
             strict: bool = False) -> Any:
    """The Jacobian of ``func`` at ``inputs``, as ``torch.autograd.functional.jacobian``.

    For one input and one output it is a Tensor of shape ``out.shape +
    in.shape``; for a tuple of inputs, a tuple with one such Tensor per input.
    It takes one backward sweep per output element.

    Example:
        >>> import tapegrad as tg
        >>> tg.jacobian(lambda x: x * x, tg.Tensor([1.0, 2.0])).data
        array([[2., 0.],
               [0., 4.]])
    """
    leaves, single = _as_inputs(inputs, create_graph)
    with enable_grad():
        out = func(*leaves)
        out_shape = np.shape(out.data)
        rows = []
        for k in range(int(np.prod(out_shape))):
            seed = np.zeros(out_shape, dtype=np.asarray(out.data).dtype)
            seed.reshape(-1)[k] = 1.0
            grads = _core.grad(out, leaves, seed if out_shape else None, True, True, create_graph)
            _check_unused(grads, strict, "jacobian")
            rows.append(_zeros_for(grads, leaves))
    result = tuple(_stacked([r[i] for r in rows], out_shape + np.shape(leaf.data))
                   for i, leaf in enumerate(leaves))
    return result[0] if single else result


def hvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """``(func(*inputs), H v)``, as ``torch.autograd.functional.hvp``.

    ``func`` returns a single-element Tensor; ``H`` is its Hessian at
    ``inputs`` and ``v`` has the inputs' shapes (a tuple for a tuple of
    inputs; it may be omitted when the input has a single element). It takes
    two sweeps, not the Hessian: the gradient with ``create_graph=True``, then
    the gradient of its dot product with ``v``.

    Example:
        >>> import tapegrad as tg
        >>> f = lambda x: (x * x * x).sum()
        >>> out, hv = tg.hvp(f, tg.Tensor([1.0, 2.0]), tg.Tensor([1.0, 1.0]))
        >>> hv.data
        array([ 6., 12.])
    """
    leaves, single = _as_inputs(inputs, create_graph)
    if v is None:
        if any(np.size(leaf.data) != 1 for leaf in leaves):
            raise RuntimeError("hvp: v can be omitted only when every input has one element")
        v = 1.0 if single else (1.0,) * len(leaves)
    vs = (v,) if single else tuple(v)
    if len(vs) != len(leaves):
        raise ValueError(f"hvp: {len(vs)} vectors v for {len(leaves)} inputs; give one per input")
    with enable_grad():
        out = _scalar_output(func(*leaves), "hvp")
        grads = _core.grad(out, leaves, None, True, True, True)
        _check_unused(grads, strict, "hvp")
        dot = None
        for g, vec, leaf in zip(grads, vs, leaves):
            vec = vec.data if isinstance(vec, Tensor) else np.asarray(vec, dtype=float)
            if np.shape(vec) != np.shape(leaf.data):
                raise ValueError(f"hvp: v has shape {np.shape(vec)} but its input has shape "
                                 f"{np.shape(leaf.data)}; give v the input's shape")
            if g is not None and g.requires_grad:
                term = (g * vec).sum() if np.ndim(vec) else g * float(vec)
                dot = term if dot is None else dot + term
        hv = (_core.grad(dot, leaves, None, create_graph, True, create_graph) if dot is not None
              else (None,) * len(leaves))
    result = _zeros_for(hv, leaves)
    if not create_graph:
        result = tuple(Tensor(h.data, requires_grad=False) for h in result)
    return (out if create_graph else out.detach()), result[0] if single else result


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
            strict: bool = False) -> Any:
    """The Hessian of ``func`` at ``inputs``, as ``torch.autograd.functional.hessian``.

    ``func`` returns a single-element Tensor. For one input the result is a
    Tensor of shape ``in.shape + in.shape``; for a tuple of inputs, a tuple of
    tuples with ``H[i][j]`` of shape ``in_i.shape + in_j.shape``. One
    ``create_graph`` sweep gives the gradient, then one sweep per gradient
    element gives a row.

    Example:
        >>> import tapegrad as tg
        >>> tg.hessian(lambda x: (x * x * x).sum(), tg.Tensor([1.0, 2.0])).data
        array([[ 6.,  0.],
               [ 0., 12.]])
    """
    leaves, single = _as_inputs(inputs, create_graph)
    with enable_grad():
        out = _scalar_output(func(*leaves), "hessian")
        grads = _core.grad(out, leaves, None, True, True, True)
        _check_unused(grads, strict, "hessian")
        blocks = []
        for g, leaf_i in zip(grads, leaves):
            shape_i = np.shape(leaf_i.data)
            flat = g.reshape(-1) if g is not None and np.ndim(g.data) else g
            rows = []
            for k in range(int(np.prod(shape_i))):
                gk = None if g is None else (flat[k] if np.ndim(g.data) else g)
                row = ((None,) * len(leaves) if gk is None or not gk.requires_grad
                       else _core.grad(gk, leaves, None, True, True, create_graph))
                rows.append(_zeros_for(row, leaves))
            blocks.append(tuple(_stacked([r[j] for r in rows], shape_i + np.shape(leaf_j.data))
                                for j, leaf_j in enumerate(leaves)))
    return blocks[0][0] if single else tuple(blocks)


class Tape:
    """A TensorFlow-style explicit tape: ops inside ``with`` record on it alone.

    ``tape.gradient(target, sources)`` returns one Tensor per source (None for
    a source the target does not depend on), or a single Tensor for a single
    source. A non-persistent tape frees its records after its first
    ``gradient()``; a persistent one keeps them until it is garbage or
    ``tape.clear()``. Tapes nest: ops record on the innermost only.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor(3.0)
        >>> with tg.Tape() as tape:
        ...     y = x * x
        >>> tape.gradient(y, x).data
        6.0
    """

    def __init__(self, persistent: bool = False) -> None:
        self.persistent = persistent
        self._own = _core.OwnTape()
        self._used = False

    def __enter__(self) -> Tape:
        self._own.push()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._own.pop()

    def gradient(self, target: Tensor, sources: Any, output_gradients: Any = None) -> Any:
        """Gradients of ``target`` with respect to ``sources`` from this tape's records.

        Example: ``dw, db = tape.gradient(loss, [w, b])``.
        """
        if self._used and not self.persistent:
            raise RuntimeError(
                "Tape.gradient: a non-persistent tape computes one gradient and then frees its "
                "records; use tapegrad.Tape(persistent=True) to call gradient() more than once")
        single = isinstance(sources, Tensor)
        self._own.push()
        try:
            grads = _core.grad(target, sources, output_gradients, self.persistent, True)
        finally:
            self._own.pop()
        self._used = True
        if not self.persistent:
            self._own.clear()
        return grads[0] if single else list(grads)

    def clear(self) -> None:
        """Free this tape's records. Example: ``tape.clear()``."""
        self._own.clear()
