#!/usr/bin/env bash
# Builds heapsight in release mode from the committed HEAD (not the working tree) and
# installs it, with the peers from bench/requirements.txt, into a separate virtualenv
# (.venv-bench). Benchmark runs then measure one known commit and are not disturbed by
# concurrent `maturin develop` rebuilds (often debug builds) of the shared checkout.
#
#   bash bench/build_release.sh            # then: .venv-bench/bin/python bench/capture.py
set -euo pipefail
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
venv=${BENCH_VENV:-$repo/.venv-bench}
python=${PYTHON:-python3}
src=$repo/target/bench-src
commit=$(git -C "$repo" rev-parse --short HEAD)

rm -rf "$src"
mkdir -p "$src"
git -C "$repo" archive HEAD | tar -x -C "$src"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q "maturin>=1.7,<2" -r "$repo/bench/requirements.txt"
(
    cd "$src"
    CARGO_TARGET_DIR=$repo/target/bench-wheel "$venv/bin/maturin" build --release -q \
        -i "$venv/bin/python" -o "$src/wheels"
)
"$venv/bin/pip" install -q --force-reinstall --no-deps "$src"/wheels/heapsight-*.whl
echo "heapsight $commit (release) installed into $venv"
