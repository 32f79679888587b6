"""Rewrite the op table in README.md from the catalogue: python tools/op_table.py [README.md]."""

import sys
from pathlib import Path

from tapegrad import catalogue

readme = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "README.md")
readme.write_text(catalogue.readme_with_table(readme.read_text()))
