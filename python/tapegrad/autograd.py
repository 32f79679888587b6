"""The PyTorch-style surface: grad modes, tapegrad.grad, tapegrad.tensor, Function.

``t.backward()`` and ``.grad`` live on Tensor (tensor.py); the sweep is native.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

import numpy as np

from . import _core
from .array_ops import reshape, stack
from .history import OperationRecord, RecordKeys
from .tensor import Tensor

F = TypeVar("F", bound=Callable[..., Any])


class _GradMode:
    """A context manager and decorator that sets a mode of this thread (grad mode here)."""

    _enabled: bool
    _set: Callable[[bool], bool] = staticmethod(_core.set_grad_enabled)

    def __enter__(self) -> None:
        self._previous = self._set(self._enabled)

    def __exit__(self, *exc: Any) -> None:
        self._set(self._previous)

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


class detect_anomaly(_GradMode):
    """Check every gradient a backward produces inside: raise at the first NaN or inf.

    As ``torch.autograd.detect_anomaly``: per thread, a context manager or a
    decorator. Ops recorded inside remember the file and line of your code that
    recorded them; a sweep run inside checks the gradients each op's backward
    gives, and at the first NaN or infinity raises RuntimeError naming the op, its
    output's label and that line. Outside it nothing is looked up or checked.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor(0.0, "x")
        >>> with tg.detect_anomaly():
        ...     y = tg.log(tg.sqrt(x))
        ...     try:
        ...         y.backward()
        ...     except RuntimeError as e:
        ...         print(str(e).split(" (")[0])
        detect_anomaly: the backward of log
    """

    _enabled = True
    _set = staticmethod(_core.set_detect_anomaly)


def is_anomaly_enabled() -> bool:
    """Whether ``detect_anomaly`` is on for this thread. Example: ``tg.is_anomaly_enabled()``."""
    return _core.is_anomaly_enabled()


def set_detect_anomaly(mode: bool) -> bool:
    """Turn anomaly detection on or off for this thread; returns the previous mode.

    Example: ``previous = tapegrad.set_detect_anomaly(True)``.
    """
    return _core.set_detect_anomaly(bool(mode))


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


def as_tensor(data: Any, requires_grad: bool = False, label: str | None = None) -> Tensor:
    """A Tensor that shares ``data`` (an ndarray) instead of copying it, as ``torch.as_tensor``.

    ``Tensor(a)`` and ``tapegrad.tensor(a)`` copy the array, so that writing into
    ``a`` later cannot change a recorded gradient; this saves the copy. Do not write
    into ``a`` while a graph that used the tensor may still be differentiated: its
    gradients would mix values the graph never saw. Data that is not a float32 or
    float64 array is converted (a new array) as by ``Tensor``. A Tensor comes back
    as it is, history and all, as from ``torch.as_tensor`` (unless a label or
    ``requires_grad=True`` asks for a new leaf).

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = np.array([1.0, 2.0])
        >>> t = tg.as_tensor(a, requires_grad=True)
        >>> t.data is a
        True
        >>> tg.as_tensor(t) is t
        True
    """
    if isinstance(data, Tensor) and label is None and not requires_grad:
        return data
    return Tensor(data, label, requires_grad=requires_grad, copy=False)


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
    history, which can be differentiated again, to any order; an
    ``OperationRecord`` appended by hand (with a Python ``backward_fn``) on
    the way raises RuntimeError (its backward is not recorded), a
    ``Function`` whose backward uses Tensor ops works.

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
    return _core.grad(outputs, inputs, grad_outputs, retain_graph=bool(retain),
                      create_graph=bool(create_graph), allow_unused=allow_unused)


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
    ``ctx.save_for_backward``: those keep the values they had when saved (an
    in-place update later does not reach the backward) and do not keep their
    graph alive, while a
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
        # Inside tapegrad.compile's trace, forward is a callback the replay calls
        # again on new values: it may read them (Note [Compiled tapes]).
        tracing = _core.tracing()
        with no_grad():
            raw = _core.untraced(cls.forward, ctx, *args) if tracing else cls.forward(ctx, *args)
        single = not isinstance(raw, tuple)
        record = _core.is_grad_enabled() and any(needs)
        raws = (raw,) if single else raw
        outputs = _outputs_of_forward(raws, record)
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
            if tracing:
                operation.replay = _replay_of(cls, operation, args, needs, tensor_args)
            keys = RecordKeys(operation)  # keys as the Tensors themselves
            # Note [Saved tensors]: the tape keeps the record, and so the ctx; recorded
            # tensors in it become handles that do not keep their records alive.
            ctx.saved_tensors = _core.append_record(keys, True, ctx.saved_tensors)
            keys.release()  # resolved: let go of the Tensors
        return outputs[0] if single else tuple(outputs)


def _outputs_of_forward(raws: tuple, record: bool) -> list:
    """forward's results as Tensors: a Tensor's value is tapegrad's own, immutable, so it
    is shared (read for its value alone, as a layout: no escape while compile traces);
    anything else is copied."""
    return [Tensor(_core.peek(o), requires_grad=record, copy=False) if isinstance(o, Tensor)
            else Tensor(o, requires_grad=record) for o in raws]


def _replay_of(cls: type, operation: Any, args: tuple, needs: tuple,
               tensor_args: tuple) -> Callable[[list], list]:
    """What a compiled tape's replay calls at a Function's row (Note [Compiled tapes]):
    forward again on the inputs' new values (the other arguments as traced), its backward
    rebound to the new ctx; returns the outputs' values."""
    positions = [i for i, is_tensor in enumerate(tensor_args) if is_tensor]

    def replay(values: list) -> list:
        call = list(args)
        for i, value in zip(positions, values):
            call[i] = Tensor(value, requires_grad=needs[i], copy=False)
        ctx = FunctionCtx(needs)
        with no_grad():
            raw = cls.forward(ctx, *call)
        raws = raw if isinstance(raw, tuple) else (raw,)
        outputs = _outputs_of_forward(raws, False)
        ctx.saved_tensors = tuple(
            next((out for r, out in zip(raws, outputs) if r is s), s) for s in ctx.saved_tensors)
        operation.backward_fn = _backward_of(cls, ctx, tensor_args)
        operation.graph_backward = _graph_backward_of(cls, ctx, tensor_args)
        return [_core.peek(o) for o in outputs]

    return replay


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
            result = cls.backward(ctx, *(Tensor(g, requires_grad=False, copy=False) for g in grads))
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
# Each takes torch's signature and returns what torch returns. As torch's
# _grad_preprocess does, the function runs on nodes of the helper's own, one
# per input, and is differentiated with respect to those. Without create_graph
# they are fresh leaves made from the inputs' values (the caller's tensors are
# not touched) and the results are constants. With create_graph=True an input
# that requires grad gets a recorded node of its own (``x + 0.0``, whose
# gradient passes straight through): each result is the partial derivative
# with respect to that input slot, even when the same tensor is given twice or
# one input is computed from another, and it keeps history back to the
# caller's tensors, so it can be differentiated again. An input that does not
# require grad becomes a fresh leaf either way.


def _value(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _as_tuple(items: Any) -> tuple[tuple, bool]:
    """``items`` as a tuple, and whether it was one (a list counts as a tuple)."""
    if isinstance(items, (tuple, list)):
        return tuple(items), True
    return (items,), False


def _unpack(items: tuple, was_tuple: bool) -> Any:
    return items if was_tuple else items[0]


def _input_nodes(inputs: Any, create_graph: bool, what: str) -> tuple[tuple, bool]:
    """The nodes ``func`` runs on, one per input, and whether the inputs were a tuple."""
    items, was_tuple = _as_tuple(inputs)
    if not items:
        raise ValueError(f"{what}: inputs is empty; give a Tensor or a tuple of Tensors")
    with enable_grad():
        nodes = tuple(x + 0.0 if create_graph and isinstance(x, Tensor) and x.requires_grad
                      else Tensor(_value(x)) for x in items)
    return nodes, was_tuple


def _outputs_of(out: Any, what: str) -> tuple[tuple, bool]:
    """The function's outputs as a tuple of Tensors, and whether it returned a tuple."""
    outs, was_tuple = _as_tuple(out)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            which = f"output {k} is" if was_tuple else "it returned"
            raise TypeError(f"{what}: the function must return a Tensor or a tuple of Tensors, "
                            f"but {which} {type(o).__name__}")
    return outs, was_tuple


def _check_outputs(outs: tuple, strict: bool, what: str) -> None:
    for k, o in enumerate(outs if strict else ()):
        if not o.requires_grad:
            which = "the output" if len(outs) == 1 else f"output {k}"
            raise RuntimeError(
                f"{what}: {which} of the function does not require grad, so it does not depend "
                f"on the inputs (strict=True); compute it from the inputs, or pass strict=False "
                f"to get zeros")


def _vectors(v: Any, refs: tuple, was_tuple: bool, what: str, of: str) -> tuple:
    """``v`` as one entry per reference (an output or an input), each of its shape."""
    if was_tuple:
        vs = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if len(vs) != len(refs):
            raise ValueError(f"{what}: v must be a tuple with one entry per {of} "
                             f"({len(refs)} {of}s), got {len(vs)}")
    elif (isinstance(v, tuple) and len(v) == 1
          and np.shape(_value(v[0])) == refs[0].shape):
        vs = v  # torch's form for a single input or output: a tuple of one
    else:
        vs = (v,)
    for k, (vk, ref) in enumerate(zip(vs, refs)):
        got, want = np.shape(_value(vk)), ref.shape
        if got != want:
            which = f"v[{k}]" if was_tuple else "v"
            whose = f"{of} {k}" if was_tuple else f"the {of}"
            raise ValueError(f"{what}: {which} has shape {got} but {whose} has shape {want}; "
                             f"give v the {of}'s shape")
    return vs


def _grads(outs: tuple, grad_outputs: tuple, nodes: tuple, retain: bool,
           create_graph: bool) -> tuple:
    """The gradient of ``outs`` per node, starting from ``grad_outputs`` (one per output),
    None for a node they do not reach.

    Outputs that do not require grad are left out (torch's _autograd_grad).
    """
    kept = [(o, g) for o, g in zip(outs, grad_outputs) if o is not None and o.requires_grad]
    if not kept:
        return (None,) * len(nodes)
    return _core.grad([o for o, _ in kept], nodes, tuple(g for _, g in kept),
                      retain_graph=retain, create_graph=create_graph, allow_unused=True)


def _check_grads(grads: tuple, strict: bool, create_graph: bool, what: str, of: str) -> None:
    """strict=True: each gradient exists, and with create_graph depends on the inputs."""
    for k, g in enumerate(grads if strict else ()):
        if g is None:
            raise RuntimeError(f"{what}: {of} does not depend on input {k} (strict=True); "
                               f"pass strict=False to get zeros for it")
        if create_graph and not g.requires_grad:
            raise RuntimeError(
                f"{what}: the derivative of {of} with respect to input {k} does not depend on "
                f"the inputs, which strict=True does not allow with create_graph=True; pass "
                f"strict=False")


def _check_first_grads(grads: tuple, strict: bool, what: str) -> None:
    """strict=True for hessian and hvp: each gradient exists and depends on the inputs."""
    _check_grads(grads, strict, False, what, "the output")
    for k, g in enumerate(grads if strict else ()):
        if not g.requires_grad:
            raise RuntimeError(
                f"{what}: the gradient with respect to input {k} does not depend on the inputs "
                f"(is the function linear in it?), which strict=True does not allow; pass "
                f"strict=False to get zeros")


def _zeros_for(grads: tuple, nodes: tuple) -> tuple:
    """Each gradient, with zeros (a constant of the input's shape) for None."""
    return tuple(g if g is not None
                 else Tensor(0.0 if isinstance(_core.peek(node), float)  # a layout, no value
                             else np.zeros(node.shape, node.dtype), requires_grad=False)
                 for g, node in zip(grads, nodes))


def _scalar_output(out: Any, what: str) -> Tensor:
    if not isinstance(out, Tensor) or out.size != 1:
        got = (f"shape {out.shape}" if isinstance(out, Tensor)
               else f"a tuple of {len(out)}" if isinstance(out, (tuple, list))
               else type(out).__name__)
        raise RuntimeError(
            f"{what}: the function must return a single Tensor with a single element, got {got}")
    return out


def _stacked(rows: list, shape: tuple, like: Tensor) -> Tensor:
    """Rows of a Jacobian (Tensors) as one Tensor of `shape`, recorded when they have history."""
    if not rows:  # an output with no elements
        return Tensor(np.zeros(shape, dtype=like.dtype), requires_grad=False)
    if any(r.requires_grad for r in rows):
        return reshape(stack(rows), shape)
    return Tensor(np.stack([np.asarray(r.data) for r in rows]).reshape(shape), requires_grad=False)


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """``(func(*inputs), v^T J)``, as ``torch.autograd.functional.vjp``.

    ``v`` has the output's shape, or is a tuple with one entry per output when
    ``func`` returns a tuple; it may be omitted when ``func`` returns a single
    Tensor with one element. The first result is ``func``'s output (a tuple
    for a tuple), the second has one gradient per input (a Tensor, or a tuple
    of them when ``inputs`` is a tuple). With ``create_graph=True`` both keep
    their history, and each gradient is the partial derivative with respect
    to its input slot, as in PyTorch. ``strict=True`` raises when an output
    does not require grad or does not depend on an input.

    Example:
        >>> import tapegrad as tg
        >>> out, g = tg.vjp(lambda x: x * x, tg.Tensor([1.0, 2.0]), v=[1.0, 1.0])
        >>> g.data
        array([2., 4.])
        >>> (sq, total), g = tg.vjp(lambda x: (x * x, x.sum()), tg.Tensor([1.0, 2.0]),
        ...                         v=([1.0, 1.0], 10.0))
        >>> g.data
        array([12., 14.])
    """
    nodes, inputs_tuple = _input_nodes(inputs, create_graph, "vjp")
    with enable_grad():
        outs, outputs_tuple = _outputs_of(func(*nodes), "vjp")
        _check_outputs(outs, strict, "vjp")
        if v is None:
            if len(outs) != 1 or outs[0].size != 1:
                shapes = ", ".join(str(o.shape) for o in outs)
                raise RuntimeError(
                    f"vjp: v can be omitted only when the function returns a single Tensor with "
                    f"one element, but it returned shapes {shapes}; pass v with the output's "
                    f"shape (a tuple with one entry per output for a tuple of outputs)")
            grad_outputs: tuple = (None,)
        else:
            grad_outputs = tuple(
                vk if isinstance(vk, Tensor) else np.asarray(vk, dtype=float)
                for vk in _vectors(v, outs, outputs_tuple, "vjp", "output"))
        grads = _grads(outs, grad_outputs, nodes, create_graph, create_graph)
    _check_grads(grads, strict, create_graph, "vjp",
                 "the outputs" if outputs_tuple else "the output")
    grads = _zeros_for(grads, nodes)
    outs = outs if create_graph else tuple(o.detach() for o in outs)
    return _unpack(outs, outputs_tuple), _unpack(grads, inputs_tuple)


def jvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """``(func(*inputs), J v)``, as ``torch.autograd.functional.jvp``.

    ``v`` has the inputs' shapes (a tuple with one entry per input for a tuple
    of inputs); it may be omitted for a single input with one element. The
    second result has one entry per output (a tuple for a tuple of outputs).
    As PyTorch's, it is the double-backward trick: the vjp ``J^T u`` is
    recorded for a cotangent ``u`` (it is linear in u), and the gradient of
    ``<J^T u, v>`` with respect to u is ``J v``. A compiled function's
    ``jvp`` is true forward mode (:meth:`CompiledFunction.jvp`).
    ``strict=True`` raises when the outputs do not depend on an input.

    Example:
        >>> import tapegrad as tg
        >>> out, jv = tg.jvp(lambda x: x * x, tg.Tensor([1.0, 2.0]), v=[1.0, 10.0])
        >>> jv.data
        array([ 2., 40.])
    """
    nodes, inputs_tuple = _input_nodes(inputs, create_graph, "jvp")
    if v is None:
        if len(nodes) != 1 or nodes[0].size != 1:
            raise RuntimeError("jvp: v can be omitted only for a single input with one element; "
                               "pass v with the inputs' shapes")
        v = np.ones(nodes[0].shape)
    vs = tuple(vk if isinstance(vk, Tensor) else np.asarray(vk, dtype=float)
               for vk in _vectors(v, nodes, inputs_tuple, "jvp", "input"))
    with enable_grad():
        outs, outputs_tuple = _outputs_of(func(*nodes), "jvp")
        _check_outputs(outs, strict, "jvp")
        cotangents = tuple(Tensor(np.zeros(o.shape, o.dtype)) for o in outs)
        pulled = _grads(outs, cotangents, nodes, True, True)  # J^T u, recorded
        _check_grads(pulled, strict, False, "jvp",
                     "the outputs" if outputs_tuple else "the output")
        kept = [(g, vk) for g, vk in zip(pulled, vs) if g is not None]
        pushed = _grads(tuple(g for g, _ in kept), tuple(vk for _, vk in kept), cotangents,
                        create_graph, create_graph) if kept else (None,) * len(outs)
    pushed = _zeros_for(pushed, cotangents)
    if not create_graph:
        outs = tuple(o.detach() for o in outs)
        pushed = tuple(p.detach() for p in pushed)
    return _unpack(outs, outputs_tuple), _unpack(pushed, outputs_tuple)


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
             strict: bool = False) -> Any:
    """The Jacobian of ``func`` at ``inputs``, as ``torch.autograd.functional.jacobian``.

    Each block is a Tensor of shape ``out.shape + in.shape``. For one input
    and one output the result is that Tensor; for a tuple of inputs, a tuple
    with one block per input; for a tuple of outputs, a tuple with one entry
    per output; for both, a tuple of tuples with ``J[i][j]`` = d out_i / d
    in_j. With ``create_graph=True`` the blocks keep their history and each is
    the partial derivative with respect to its input slot, as in PyTorch.
    ``strict=True`` raises when an output does not require grad or does not
    depend on an input. It takes one backward sweep per output element.

    Example:
        >>> import tapegrad as tg
        >>> tg.jacobian(lambda x: x * x, tg.Tensor([1.0, 2.0])).data
        array([[2., 0.],
               [0., 4.]])
        >>> j_sq, j_sum = tg.jacobian(lambda x: (x * x, x.sum()), tg.Tensor([1.0, 2.0]))
        >>> j_sum.data
        array([1., 1.])
        >>> x = tg.Tensor([1.0, 2.0])
        >>> j_a, j_b = tg.jacobian(lambda a, b: (a * b * b).sum(), (x, x), create_graph=True)
        >>> j_a.data, j_b.data
        (array([1., 4.]), array([2., 8.]))
    """
    nodes, inputs_tuple = _input_nodes(inputs, create_graph, "jacobian")
    blocks = []
    with enable_grad():
        outs, outputs_tuple = _outputs_of(func(*nodes), "jacobian")
        _check_outputs(outs, strict, "jacobian")
        for i, out in enumerate(outs):
            out_shape = out.shape
            rows = []
            for k in range(int(np.prod(out_shape))):
                grad_output = None  # a scalar output starts from 1
                if out_shape:  # row k of the Jacobian: start from the k-th unit vector
                    grad_output = np.zeros(out_shape, dtype=out.dtype)
                    grad_output.reshape(-1)[k] = 1.0
                grads = _grads((out,), (grad_output,), nodes, True, create_graph)
                _check_grads(grads, strict, create_graph, "jacobian",
                             f"output {i}" if outputs_tuple else "the output")
                rows.append(_zeros_for(grads, nodes))
            blocks.append(tuple(
                _stacked([r[j] for r in rows], out_shape + node.shape, node)
                for j, node in enumerate(nodes)))
    return _unpack(tuple(_unpack(b, inputs_tuple) for b in blocks), outputs_tuple)


def hvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """``(func(*inputs), H v)``, as ``torch.autograd.functional.hvp``.

    ``func`` returns a single-element Tensor; ``H`` is its Hessian at
    ``inputs`` and ``v`` has the inputs' shapes (a tuple with one entry per
    input for a tuple of inputs). As in PyTorch, ``v`` may be omitted only
    for a single input with one element (it is then 1). With
    ``create_graph=True`` the results keep their history (and ``H v`` its
    dependence on a ``v`` that requires grad), and ``H`` holds the partial
    derivatives with respect to each input slot. ``strict=True`` raises when
    the output does not depend on an input or its gradient does not depend on
    the inputs. It takes two sweeps, not the Hessian: the gradient with
    ``create_graph=True``, then the gradient of its dot product with ``v``.

    Example:
        >>> import tapegrad as tg
        >>> f = lambda x: (x * x * x).sum()
        >>> out, hv = tg.hvp(f, tg.Tensor([1.0, 2.0]), tg.Tensor([1.0, 1.0]))
        >>> hv.data
        array([ 6., 12.])
        >>> tg.hvp(f, tg.Tensor([2.0]))[1].data
        array([12.])
    """
    nodes, inputs_tuple = _input_nodes(inputs, create_graph, "hvp")
    if v is None:
        if len(nodes) != 1 or nodes[0].size != 1:
            shapes = ", ".join(str(n.shape) for n in nodes)
            raise RuntimeError(
                f"hvp: v can be omitted only for a single input with one element, but the "
                f"inputs have shapes {shapes}; pass v with the input's shape (a tuple with one "
                f"entry per input for a tuple of inputs)")
        vs: tuple = (np.ones(nodes[0].shape),)
    else:
        vs = _vectors(v, nodes, inputs_tuple, "hvp", "input")
    with enable_grad():
        out = _scalar_output(func(*nodes), "hvp")
        _check_outputs((out,), strict, "hvp")
        grads = _grads((out,), (None,), nodes, True, True)
        _check_first_grads(grads, strict, "hvp")
        dot = None
        for g, vk, node in zip(grads, vs, nodes):
            if g is None or not g.requires_grad:
                continue
            if create_graph and isinstance(vk, Tensor) and vk.requires_grad:
                vec = vk  # H v keeps its dependence on v, as in PyTorch
            else:
                vec = np.asarray(_value(vk), dtype=node.dtype)
                vec = vec if vec.ndim else float(vec)
            term = g * vec
            term = term.sum() if term.ndim else term
            dot = term if dot is None else dot + term
        hv = _grads((dot,), (None,), nodes, create_graph, create_graph)
    _check_grads(hv, strict, create_graph, "hvp", "the gradient")
    result = _zeros_for(hv, nodes)
    if not create_graph:
        result = tuple(Tensor(h.data, requires_grad=False) for h in result)
    return (out if create_graph else out.detach()), _unpack(result, inputs_tuple)


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
            strict: bool = False) -> Any:
    """The Hessian of ``func`` at ``inputs``, as ``torch.autograd.functional.hessian``.

    ``func`` returns a single-element Tensor. For one input the result is a
    Tensor of shape ``in.shape + in.shape``; for a tuple of inputs, a tuple of
    tuples with ``H[i][j]`` of shape ``in_i.shape + in_j.shape``. With
    ``create_graph=True`` the blocks keep their history and hold the partial
    derivatives with respect to each input slot, as in PyTorch.
    ``strict=True`` raises, as PyTorch's does, when the output does not depend
    on an input, a gradient does not depend on the inputs, or a block
    ``H[i][j]`` is not connected to input ``j``. One ``create_graph`` sweep
    gives the gradient, then one sweep per gradient element gives a row.

    Example:
        >>> import tapegrad as tg
        >>> tg.hessian(lambda x: (x * x * x).sum(), tg.Tensor([1.0, 2.0])).data
        array([[ 6.,  0.],
               [ 0., 12.]])
    """
    nodes, inputs_tuple = _input_nodes(inputs, create_graph, "hessian")
    with enable_grad():
        out = _scalar_output(func(*nodes), "hessian")
        _check_outputs((out,), strict, "hessian")
        grads = _grads((out,), (None,), nodes, True, True)
        _check_first_grads(grads, strict, "hessian")
        blocks = []
        for i, (g, node_i) in enumerate(zip(grads, nodes)):
            shape_i = node_i.shape
            flat = g.reshape(-1) if g is not None and g.ndim else g
            rows = []
            for k in range(int(np.prod(shape_i))):
                gk = None if g is None else (flat[k] if g.ndim else g)
                row = _grads((gk,), (None,), nodes, True, create_graph)
                _check_grads(row, strict, create_graph, "hessian", f"d out/d input {i}")
                rows.append(_zeros_for(row, nodes))
            blocks.append(tuple(
                _stacked([r[j] for r in rows], shape_i + node_j.shape, node_j)
                for j, node_j in enumerate(nodes)))
    return _unpack(tuple(_unpack(b, inputs_tuple) for b in blocks), inputs_tuple)


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
            grads = _core.grad(target, sources, output_gradients,
                               retain_graph=self.persistent, allow_unused=True)
        finally:
            self._own.pop()
        self._used = True
        if not self.persistent:
            self._own.clear()
        return grads[0] if single else list(grads)

    def clear(self) -> None:
        """Free this tape's records. Example: ``tape.clear()``."""
        self._own.clear()
