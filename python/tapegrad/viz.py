"""Drawing the recorded graph: Graphviz DOT text, rendered when Graphviz is installed.

In Jupyter, ``tapegrad.viz.graph(t)`` shows the graph as a picture (SVG) where
Graphviz's ``dot`` program is installed, and as its DOT text where it is not.

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
from typing import Any

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


class Graph:
    """A recorded graph that Jupyter shows as SVG: what :func:`graph` returns.

    ``dot`` is its DOT text (taken when the Graph was made: later ops do not
    change it). Displayed in a notebook it is drawn by Graphviz's ``dot``
    program when that is installed; otherwise the notebook shows the DOT text.
    A graph of more than ``Graph.max_inline_nodes`` nodes is not drawn inline
    (Graphviz would take minutes): the notebook says so, and ``svg()`` or
    :func:`render` still draw it.

    Example:
        >>> import tapegrad as tg
        >>> g = tg.viz.graph(tg.exp(tg.Tensor(1.0, "x")))
        >>> g
        <tapegrad.viz.Graph: 3 nodes, 2 edges>
        >>> "text/plain" in g._repr_mimebundle_()  # and "image/svg+xml" with Graphviz
        True
    """

    __slots__ = ("dot", "edges", "nodes")
    max_inline_nodes = 2000

    def __init__(self, dot: str) -> None:
        self.dot = dot
        lines = dot.splitlines()[3:-1]  # after the header, before the closing brace
        self.edges = sum("->" in line for line in lines)
        self.nodes = len(lines) - self.edges

    def __repr__(self) -> str:
        return f"<tapegrad.viz.Graph: {self.nodes} nodes, {self.edges} edges>"

    def svg(self) -> str:
        """The graph drawn as SVG text by Graphviz's ``dot``; RuntimeError without it.

        Example: ``open("graph.svg", "w").write(tapegrad.viz.graph(loss).svg())``.
        """
        return _run_dot(self.dot, "svg", "svg")

    def _repr_svg_(self) -> str | None:
        if self.nodes > self.max_inline_nodes or not shutil.which("dot"):
            return None
        return self.svg()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        # Without Graphviz the notebook shows the DOT text rather than an error.
        if self.nodes > self.max_inline_nodes:
            return {"text/plain": (
                f"{self!r}: too large to draw inline (more than Graph.max_inline_nodes = "
                f"{self.max_inline_nodes}); graph.svg() or tapegrad.viz.render(t, 'graph.svg') "
                "draws it, graph.dot is its DOT text")}
        bundle = {"text/plain": self.dot}
        svg = self._repr_svg_()
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle


def graph(tensor: Tensor) -> Graph:
    """The graph that produced ``tensor``, shown as a picture in Jupyter.

    A notebook cell ending in ``tapegrad.viz.graph(loss)`` draws it (SVG, by
    Graphviz's ``dot``; its DOT text where Graphviz is not installed).

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor(2.0, "x")
        >>> print(tg.viz.graph(x * x).dot.splitlines()[0])
        digraph tapegrad {
    """
    return Graph(to_dot(tensor))


def _run_dot(dot_text: str, fmt: str, what: str, output: Path | None = None) -> str:
    """Graphviz's ``dot -T<fmt>`` on ``dot_text``: its output, or written to ``output``."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            f"{what}: Graphviz's `dot` program is not installed. Install Graphviz "
            "(apt-get install graphviz, brew install graphviz or conda install graphviz), "
            "or write tapegrad.viz.to_dot(t) to a .dot file and render it elsewhere.")
    command = [dot, f"-T{fmt}"] + (["-o", str(output)] if output is not None else [])
    return subprocess.run(command, input=dot_text, text=True, check=True,
                          capture_output=True).stdout


def render(tensor: Tensor, path: str | Path) -> Path:
    """Draw the graph of ``tensor`` to ``path`` (its suffix picks the format: .svg, .png, .pdf).

    Needs Graphviz's ``dot`` program (``apt-get install graphviz``, ``brew install
    graphviz`` or ``conda install graphviz``); without it this raises RuntimeError.

    Example: ``tapegrad.viz.render(loss, "graph.svg")``.
    """
    path = Path(path)
    _run_dot(to_dot(tensor), path.suffix.lstrip(".") or "svg", "render", path)
    return path
