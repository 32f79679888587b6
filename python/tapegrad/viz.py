"""Drawing the recorded graph: Graphviz DOT text, rendered when Graphviz is installed.

Example:
    >>> import tapegrad as tg
    >>> x = tg.Tensor(2.0, "x")
    >>> print(tg.viz.to_dot(tg.log(x) * x).splitlines()[0])
    digraph tapegrad {
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import _core
from .tensor import Tensor


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _box(label: str, shape: tuple) -> str:
    """A tensor's text: its label, then its shape, on two lines."""
    if shape == ():
        size = "scalar"
    else:
        size = "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
    return _quote(label + "\n" + size).replace("\n", "\\n")  # DOT's line break is \n


def to_dot(tensor: Tensor) -> str:
    """The graph that produced ``tensor``, as Graphviz DOT text.

    Tensors are boxes (label and shape; leaves filled), ops are ellipses (the
    op's name, or a user record's or Function's name), edges run from inputs
    to outputs. A tensor with no history on this thread's tape is one box.

    Example: ``open("graph.dot", "w").write(tapegrad.viz.to_dot(loss))``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    lines = ["digraph tapegrad {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    rows = _core.graph_of(tensor)
    if not rows:
        lines.append(f"  t [shape=box, label={_box(tensor.label, tensor.shape)}];")
        return "\n".join([*lines, "}"])
    for row, op, inputs, outputs, label, shape in rows:
        if op in ("leaf", "stale", "output"):  # a tensor no built-in op made
            style = {"leaf": ', style=filled, fillcolor="#e8f0fe"', "stale": ", style=dashed",
                     "output": ""}[op]
            lines.append(f"  t{row} [shape=box, label={_box(label, shape)}{style}];")
            continue
        lines.append(f"  op{row} [shape=ellipse, label={_quote(op)}];")
        if label is not None:  # a built-in op: its output is its own row
            lines.append(f"  t{row} [shape=box, label={_box(label, shape)}];")
        lines.extend(f"  t{i} -> op{row};" for i in inputs)
        lines.extend(f"  op{row} -> t{o};" for o in outputs)
    return "\n".join([*lines, "}"])


def render(tensor: Tensor, path: str | Path) -> Path:
    """Draw the graph of ``tensor`` to ``path`` (its suffix picks the format: .svg, .png, .pdf).

    Needs Graphviz's ``dot`` program (``apt-get install graphviz``, ``brew install
    graphviz`` or ``conda install graphviz``); without it this raises RuntimeError.

    Example: ``tapegrad.viz.render(loss, "graph.svg")``.
    """
    path = Path(path)
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "render: Graphviz's `dot` program is not installed. Install Graphviz "
            "(apt-get install graphviz, brew install graphviz or conda install graphviz), "
            "or write tapegrad.viz.to_dot(t) to a .dot file and render it elsewhere.")
    fmt = path.suffix.lstrip(".") or "svg"
    subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=to_dot(tensor), text=True,
                   check=True, capture_output=True)
    return path
