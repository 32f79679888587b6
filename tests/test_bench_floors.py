"""bench/floors.py: it runs, and its tables hold what they say (no timing is asserted)."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"


def test_floors_writes_both_tables_with_the_floor_first_and_the_target_last(tmp_path):
    output = tmp_path / "FLOORS.md"
    subprocess.run([sys.executable, str(BENCH / "floors.py"), "--repeats", "1", "--size", "3000",
                    "--output", str(output)], check=True, capture_output=True, text=True, timeout=300)
    text = output.read_text()
    assert "--repeats 1 --size 3000" in text  # the command is written beside the figures
    mlp, chain = text.split("## MLP batch 64, float64")[1].split("## Elementwise chain at 3,000")
    for section, rows, target in ((mlp, 6, "0.75x"), (chain, 6, "0.40x")):
        found = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+)x \|$", section, re.MULTILINE)
        assert len(found) == rows
        assert found[0][2] == "1.00" and found[0][0].startswith("the ")
        assert found[-1][0] == "the target (DESIGN 6)" and f"{found[-1][2]}x" == target
        floor = float(found[0][1])
        for name, value, ratio in found:
            assert float(value) > 0
            # Each ratio is its row over the floor's, to the table's rounding.
            assert abs(float(ratio) - float(value) / floor) < 0.02, name
