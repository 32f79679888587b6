"""What Jupyter shows: a Tensor's HTML summary, and graphs as SVG (DOT text without Graphviz)."""

import shutil

import numpy as np
import pytest

import tapegrad as tg


def test_a_leaf_shows_label_shape_dtype_and_value():
    html = tg.Tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), "w")._repr_html_()
    assert html.startswith("<code>w</code>: Tensor, shape (2, 3), float32, leaf, "
                           "requires_grad=True<br>")
    assert "[[0. 1. 2.]\n [3. 4. 5.]]" in html


def test_an_op_result_says_it_has_history_and_a_constant_that_it_has_none():
    x = tg.Tensor(2.0, "x")
    y = x * x
    assert "made by an op (has history), requires_grad=True" in y._repr_html_()
    assert "shape (), float64" in y._repr_html_()
    assert "<code>4.0</code>" in y._repr_html_()
    c = tg.tensor([1.0, 2.0])
    assert "constant (no history), requires_grad=False" in c._repr_html_()


def test_the_label_and_value_are_escaped():
    html = tg.Tensor(1.0, "<b>a & b</b>")._repr_html_()
    assert html.startswith("<code>&lt;b&gt;a &amp; b&lt;/b&gt;</code>:")
    assert "<b>" not in html


def test_a_large_tensor_is_summarised_not_printed_whole():
    html = tg.Tensor(np.arange(100_000.0))._repr_html_()
    assert "shape (100000,)" in html and "..." in html and len(html) < 300


def test_ipython_picks_the_html_summary():
    formatters = pytest.importorskip("IPython.core.formatters")
    bundle, _ = formatters.DisplayFormatter().format(tg.Tensor(3.0, "x"))
    assert bundle["text/plain"] == "x: 3.0"
    assert bundle["text/html"].startswith("<code>x</code>: Tensor, shape ()")


def test_a_graph_keeps_its_dot_text_and_counts_its_nodes_and_edges():
    x = tg.Tensor(2.0, "x")
    y = tg.exp(x) * x
    graph = tg.viz.graph(y)
    assert graph.dot == tg.viz.to_dot(y)
    # x, exp, exp's output, mul, y; x -> exp -> t, and t, x -> mul -> y.
    assert (graph.nodes, graph.edges) == (5, 5)
    assert repr(graph) == "<tapegrad.viz.Graph: 5 nodes, 5 edges>"


def test_a_graph_too_large_to_draw_inline_says_so(monkeypatch):
    x = tg.Tensor(1.0, "x")
    y = x
    for _ in range(30):
        y = y * 1.5
    graph = tg.viz.graph(y)
    assert graph.nodes == 61
    monkeypatch.setattr(tg.viz.Graph, "max_inline_nodes", 60)
    bundle = graph._repr_mimebundle_()
    assert list(bundle) == ["text/plain"] and graph._repr_svg_() is None
    assert bundle["text/plain"].startswith("<tapegrad.viz.Graph: 61 nodes, 60 edges>: too large")
    assert "tapegrad.viz.render" in bundle["text/plain"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_a_graph_shows_as_svg_with_graphviz():
    x = tg.Tensor(2.0, "x")
    graph = tg.viz.graph(tg.log(x) * x)
    bundle = graph._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "text/plain"}
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    for text in (">x<", ">log<", ">mul<"):  # node labels drawn as SVG text
        assert text in svg, text
    assert graph._repr_svg_() == svg


def test_without_graphviz_a_graph_offers_its_dot_text(monkeypatch):
    graph = tg.viz.graph(tg.Tensor(2.0, "x") * 3.0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert graph._repr_mimebundle_() == {"text/plain": graph.dot}
    assert graph._repr_svg_() is None
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        graph.svg()


def test_ipython_shows_a_graph_without_graphviz_as_text(monkeypatch):
    formatters = pytest.importorskip("IPython.core.formatters")
    graph = tg.viz.graph(tg.Tensor(2.0, "x") * 3.0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    bundle, _ = formatters.DisplayFormatter().format(graph)
    assert bundle == {"text/plain": graph.dot}
