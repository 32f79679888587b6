"""The seed's surface: OperationRecord, operation_history, clear_history, compute_gradients.

The records live on this thread's native tape; ``operation_history`` is a live
view of it. Built-in ops appear there as OperationRecords whose ``backward_fn``
computes their input gradients natively; records that users append keep their
Python ``backward_fn``, which the native sweep calls back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any, Callable

from . import _core
from .tensor import Tensor


def _label(key: Any) -> str:
    return key.label if isinstance(key, Tensor) else key


class OperationRecord:
    """One recorded operation: input labels, output labels, and its backward.

    ``backward_fn`` takes one gradient per output (positionally) and returns a
    list with one gradient per input (None for no gradient). ``inputs`` and
    ``outputs`` are lists of labels; Tensors are accepted and stored as labels
    (the record then names exactly those tensors, even if labels repeat).

    A record with a Python ``backward_fn`` is differentiated once: its
    gradient computation is not itself recorded, so ``create_graph=True``
    through it raises RuntimeError. For an op that must be differentiated
    twice, write a ``tapegrad.Function`` whose backward uses Tensor ops.

    Example:
        >>> import tapegrad as tg
        >>> tg.clear_history()
        >>> a = tg.Tensor(3.0, "a")
        >>> out = tg.Tensor(a.data ** 2, "out")
        >>> tg.operation_history.append(
        ...     tg.OperationRecord([a.label], [out.label], lambda g: [2 * a.data * g]))
        >>> tg.compute_gradients(out, [a])
        [6.0]
    """

    # replay: set on a Function's record made while tapegrad.compile traces
    # (autograd.py's _replay_of), what the replay calls to run its forward again.
    __slots__ = ("_keys", "backward_fn", "graph_backward", "input_keys", "op", "output_keys",
                 "replay")

    def __init__(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        backward_func: Callable[..., Sequence[Any]],
    ) -> None:
        self.input_keys = [_label(k) for k in inputs]
        self.output_keys = [_label(k) for k in outputs]
        self.backward_fn = backward_func
        self.op = "custom"
        # Set by Function.apply: the backward on Tensors, for create_graph.
        self.graph_backward: Callable[..., Sequence[Any]] | None = None
        # What append() resolves: the Tensors themselves where they were given.
        self._keys = (list(inputs), list(outputs))

    def __repr__(self) -> str:
        return f"OperationRecord({self.op}: {self.input_keys} -> {self.output_keys})"


class RecordKeys:
    """What the native append reads for a record: its keys as given, and its backward.

    ``operation_history.append`` and ``Function.apply`` hand one to
    ``_core.append_record``, which resolves the keys (labels or Tensors) to tensors.

    Example:
        >>> import tapegrad as tg
        >>> keys = RecordKeys(tg.OperationRecord(["a"], ["b"], lambda g: [g]))
        >>> keys.input_keys, keys.op
        (['a'], 'custom')
    """

    __slots__ = ("input_keys", "output_keys", "record")

    def __init__(self, record: Any) -> None:
        keys = getattr(record, "_keys", None)
        self.input_keys, self.output_keys = keys or (record.input_keys, record.output_keys)
        self.record = record

    @property
    def backward_fn(self) -> Callable[..., Sequence[Any]]:
        return self.record.backward_fn

    @property
    def op(self) -> str:
        return getattr(self.record, "op", "custom")

    @property
    def graph_backward(self) -> Callable[..., Sequence[Any]] | None:
        return getattr(self.record, "graph_backward", None)

    def release(self) -> None:
        """Drop the keys once the tape has resolved them, so as not to keep the Tensors alive."""
        self.input_keys = self.output_keys = None
        self.record._keys = None

    def __repr__(self) -> str:
        return repr(self.record)


def _builtin_record(
    name: str, inputs: list, outputs: list, row: int, epoch: int
) -> OperationRecord:
    record = OperationRecord(inputs, outputs, partial(_core.record_vjp, row, epoch))
    record.op = name
    return record


class OperationHistory:
    """A live view of this thread's tape: iterable, indexable and appendable.

    Example:
        >>> import tapegrad as tg
        >>> tg.clear_history()
        >>> x = tg.Tensor(2.0, "x")
        >>> y = x * x
        >>> len(tg.operation_history), tg.operation_history[0].input_keys
        (1, ['x', 'x'])
    """

    def __len__(self) -> int:
        return _core.history_length()

    def __getitem__(self, index: Any) -> Any:
        n = len(self)
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(n))]
        k = index + n if index < 0 else index
        if not 0 <= k < n:
            raise IndexError(f"operation_history index {index} out of range ({n} records)")
        name, inputs, outputs, row, epoch, user = _core.history_item(k)
        if user is not None:
            return user.record if isinstance(user, RecordKeys) else user
        return _builtin_record(name, inputs, outputs, row, epoch)

    def __iter__(self) -> Iterator[Any]:
        for k in range(len(self)):
            yield self[k]

    def append(self, record: Any) -> None:
        """Add a record whose ``backward_fn`` compute_gradients will call.

        Its keys are resolved now: a label names the newest tensor with that
        label on this thread's tape.
        """
        _core.append_record(RecordKeys(record))

    def clear(self) -> None:
        """Same as ``clear_history()``."""
        clear_history()

    def __repr__(self) -> str:
        return f"<operation_history: {len(self)} records>"


operation_history = OperationHistory()


def clear_history() -> None:
    """Empty this thread's tape and restart default labels at ``tensor_0``.

    Tensors made earlier keep their values and can feed new ops; gradients
    through their cleared history raise RuntimeError.

    Example:
        >>> import tapegrad as tg
        >>> tg.clear_history()
        >>> tg.Tensor(1.0).label
        'tensor_0'
    """
    _core.clear_history()


def compute_gradients(target: Tensor, sources: Sequence[Tensor], grad_output: Any = None) -> list:
    """Gradients of ``target`` with respect to each source, by one reverse sweep.

    Returns a list with one gradient per source, of the source's type and shape
    (a float for float data, an ndarray of the same shape and dtype for
    arrays). The sweep starts from a gradient of ones for a non-scalar target,
    unless ``grad_output`` is given. Sources the target does not depend on get
    zero. Nothing is freed, so it can be called again on the same history.

    Example:
        >>> import tapegrad as tg
        >>> tg.clear_history()
        >>> x = tg.Tensor.create(2.0, "x")
        >>> y = tg.Tensor.create(5.0, "y")
        >>> f = tg.log(x) + x * y - tg.sin(y)
        >>> [round(g, 6) for g in tg.compute_gradients(f, [x, y])]
        [5.5, 1.716338]
    """
    return _core.compute_gradients(target, sources, grad_output)
