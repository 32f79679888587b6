"""Refreshes the README's speed tables from bench/RESULTS.md (which bench/compare.py writes).

Each table in the README's "## Speed" section is matched to the RESULTS.md table with the same
header row, and its rows are replaced by that table's rows whose first cell the README table
already shows (the README shows a subset of sizes). Run after a full bench:

    python tools/readme_bench.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tables(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line ranges of the markdown tables in lines."""
    spans, start = [], None
    for k, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = k
        elif not line.startswith("|") and start is not None:
            spans.append((start, k))
            start = None
    return spans


def refresh(readme: str, results: str) -> str:
    """The README text with its speed tables' rows taken from results."""
    lines, source = readme.split("\n"), results.split("\n")
    by_header = {source[a]: source[a + 2:b] for a, b in tables(source)}
    speed = lines.index("## Speed")
    end = next(k for k in range(speed + 1, len(lines)) if lines[k].startswith("## "))
    for a, b in reversed([(a, b) for a, b in tables(lines) if speed < a < end]):
        rows = by_header.get(lines[a])
        if rows is None:
            raise SystemExit(f"README table {lines[a]!r} has no counterpart in RESULTS.md")
        shown = {row.split("|")[1] for row in lines[a + 2:b]}
        lines[a + 2:b] = [row for row in rows if row.split("|")[1] in shown]
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    readme.write_text(refresh(readme.read_text(), (ROOT / "bench" / "RESULTS.md").read_text()))


if __name__ == "__main__":
    main()
