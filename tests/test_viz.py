"""tapegrad.viz: the recorded graph as DOT text, and rendered when Graphviz is installed."""

import shutil

import numpy as np
import pytest

import tapegrad as tg

from functions import Double


def test_to_dot_shows_labels_ops_shapes_and_edges():
    x = tg.Tensor(2.0, "x")
    w = tg.Tensor(np.ones((2, 3)), "w")
    y = (tg.log(x) * w).sum(axis=0)
    dot = tg.viz.to_dot(y)
    assert dot.startswith("digraph tapegrad {") and dot.endswith("}")
    for text in ['label="x\\nscalar"', 'label="w\\n(2, 3)"', 'label="log"', 'label="mul"',
                 'label="sum"', f'label="{y.label}\\n(3,)"']:
        assert text in dot, text
    # Every edge joins two declared nodes.
    declared = {line.split()[0] for line in dot.splitlines()[3:-1] if "[" in line}
    for line in dot.splitlines():
        if "->" in line:
            a, b = line.strip(" ;").split(" -> ")
            assert a in declared and b in declared


def test_to_dot_names_user_records_and_functions():
    x = tg.Tensor(1.0, "x")
    assert 'label="Double"' in tg.viz.to_dot(Double.apply(x) + 1.0)


def test_to_dot_of_a_tensor_without_history_is_one_box():
    with tg.no_grad():
        c = tg.Tensor(1.0) * 2.0
    dot = tg.viz.to_dot(c)
    assert dot.count("shape=box") == 1 and "->" not in dot


def test_render_writes_svg_or_says_what_to_install(tmp_path, monkeypatch):
    x = tg.Tensor(2.0, "x")
    y = tg.exp(x) * x
    if shutil.which("dot"):
        out = tg.viz.render(y, tmp_path / "graph.svg")
        assert "<svg" in out.read_text()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        tg.viz.render(y, tmp_path / "graph.png")
