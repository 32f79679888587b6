"""Sphinx extension for tapegrad's docs: pictures of recorded tapes and the op table,
both made at build time from the installed tapegrad, so neither can go stale.

``tape-graph`` runs its content (Python, with ``np`` and ``tg`` imported, on a fresh
tape), shows the code, and draws the graph of the tensor named by its argument with
``tapegrad.viz.render`` (Graphviz's ``dot`` must be installed)::

    ```{tape-graph} f
    x = tg.Tensor.create(2.0, "x")
    f = tg.log(x) * x
    ```

At ``builder-inited`` the op table (``tapegrad.catalogue.markdown()``, the README's
table) is written to ``_generated/ops.md``, which the API reference includes.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

import tapegrad as tg

GENERATED = "_generated"  # under the source directory; gitignored


class TapeGraph(SphinxDirective):
    """Run the code in the content and draw the tape that produced one of its tensors."""

    required_arguments = 1  # the name of the tensor to draw
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"alt": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        if shutil.which("dot") is None:
            raise ExtensionError(
                "tape-graph needs Graphviz's `dot` to draw the tape: "
                "apt-get install graphviz (or brew/conda install graphviz)")
        code = "\n".join(self.content)
        name = self.arguments[0]
        namespace: dict[str, Any] = {"np": np, "tg": tg}
        tg.clear_history()
        exec(compile(code, f"<tape-graph in {self.env.docname}>", "exec"), namespace)
        if not isinstance(namespace.get(name), tg.Tensor):
            raise self.error(f"tape-graph: the code defines no Tensor named {name!r}")
        digest = hashlib.sha1(f"{self.env.docname}\n{code}\n{name}".encode()).hexdigest()[:12]
        out = Path(self.env.srcdir) / GENERATED / f"tape-{digest}.svg"
        out.parent.mkdir(exist_ok=True)
        tg.viz.render(namespace[name], out)
        tg.clear_history()
        literal = nodes.literal_block(code, code, language="python")
        image = nodes.image(uri=f"/{GENERATED}/{out.name}",
                            alt=self.options.get("alt", f"the tape that computed {name}"))
        return [literal, image]


# |x| in a docstring is the absolute value (the catalogue's one-line docs are written for
# help()), but reST reads it as a substitution reference.
_BARS = re.compile(r"(?<![\\`])\|([^|`\s][^|`]*?)\|")


def escape_bars(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                lines: list[str]) -> None:
    """Escape ``|x|`` in docstring prose (not in doctest lines) so reST prints it as is."""
    for k, line in enumerate(lines):
        if not line.lstrip().startswith((">>>", "...")):
            lines[k] = _BARS.sub(r"\\|\1\\|", line)


def write_op_table(app: Sphinx) -> None:
    """The catalogue's op table as Markdown, for the API reference to include."""
    out = Path(app.srcdir) / GENERATED / "ops.md"
    out.parent.mkdir(exist_ok=True)
    text = tg.catalogue.markdown()
    if not out.exists() or out.read_text() != text:  # unchanged: no rebuild of its pages
        out.write_text(text)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("tape-graph", TapeGraph)
    app.connect("builder-inited", write_op_table)
    app.connect("autodoc-process-docstring", escape_bars)
    return {"version": tg.__version__, "parallel_read_safe": False}
