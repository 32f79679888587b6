#!/usr/bin/env bash
# Differential fuzzing (tests/test_fuzz.py): random programs from the op tables
# against tapegrad.reference, finite differences and PyTorch (when installed);
# and the compile oracle (tests/test_compile_fuzz.py): the same programs, with
# branches on values, compiled and replayed against eager tapegrad.
#
#   tools/fuzz.sh                  # what CI runs: a fixed seed, 60 examples per test
#   tools/fuzz.sh --long 3600      # random seeds for an hour (default 600 s), then the
#                                  # thread stress test for 60 s
#
# Runs against the tapegrad that Python imports (pip install . first). A
# failure prints hypothesis's minimal program and the seed to reproduce it;
# turn it into a regression test at the end of tests/test_fuzz.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--long" ]; then
    exec python -m pytest -q -p no:cacheprovider tests/test_fuzz.py tests/test_compile_fuzz.py
fi
seconds="${2:-600}"
end=$(( $(date +%s) + seconds ))
rounds=0
while [ "$(date +%s)" -lt "$end" ]; do
    TAPEGRAD_FUZZ_RANDOM=1 TAPEGRAD_FUZZ_EXAMPLES=2000 \
        python -m pytest -q -p no:cacheprovider -x tests/test_fuzz.py tests/test_compile_fuzz.py
    rounds=$(( rounds + 1 ))
done
TAPEGRAD_STRESS_SECONDS=60 python -m pytest -q -p no:cacheprovider tests/test_threads.py
echo "fuzz: $rounds rounds of 2,000 random programs per test of tests/test_fuzz.py and" \
    "tests/test_compile_fuzz.py, no disagreement"
