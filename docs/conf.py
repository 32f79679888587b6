"""Sphinx configuration for tapegrad's documentation.

Build: ``pip install ".[docs]"`` then ``python -m sphinx -W -b html docs docs/_build``;
the pages' examples run with ``python -m sphinx -W -b doctest docs docs/_build/doctest``.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import tapegrad  # noqa: E402  (after the path set-up; the installed package or PYTHONPATH)

project = "tapegrad"
author = "the tapegrad authors"
copyright = "the tapegrad authors"
release = version = tapegrad.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "tapegrad_docs",  # _ext/tapegrad_docs.py: the tape pictures and the generated op table
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/*.md", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# The API reference: one stub page per name, from the lists in api/*.rst.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# The pages' doctests start from a fresh tape, with numpy and tapegrad at hand.
doctest_global_setup = """
import numpy as np
import tapegrad as tg
tg.clear_history()
"""
doctest_default_flags = (__import__("doctest").ELLIPSIS
                         | __import__("doctest").NORMALIZE_WHITESPACE)

html_theme = "furo"
html_title = f"tapegrad {release}"
html_static_path: list[str] = []

# Only the pages' {doctest} blocks run under -b doctest: the docstrings' own examples need
# their module's globals, and tests/test_docstrings.py runs them there.
doctest_test_doctest_blocks = ""
