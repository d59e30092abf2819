#!/usr/bin/env bash
# Runs the capture tests on every CPython 3.9+ found besides the default one: each gets its
# own virtualenv and its own wheel, since the extension reads version-specific layouts.
set -euo pipefail
cd "$(dirname "$0")/.."
pyenv_root=${PYENV_ROOT:-/root/.pyenv}
capture_tests=(tests/test_capture.py tests/test_shims.py tests/test_api.py tests/test_layout_headers.py)
existing=()
for t in "${capture_tests[@]}"; do [ -f "$t" ] && existing+=("$t"); done
ran=0
for python in "$pyenv_root"/versions/3.*/bin/python; do
  [ -x "$python" ] || continue
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$version" in 3.9|3.1[0-9]) ;; *) continue ;; esac
  [ "$version" = "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ] && continue
  venv=".venv-$version"
  echo "== CPython $version ($python)"
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "maturin>=1.7,<2" pytest objgraph
  fi
  rm -rf "target/wheels-$version"
  "$venv/bin/maturin" build -q -i "$venv/bin/python" -o "target/wheels-$version"
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "target/wheels-$version"/heapsight-*.whl
  (cd tests && "../$venv/bin/python" -m pytest -q -p no:cacheprovider "${existing[@]/#tests\//}")
  ran=$((ran + 1))
done
echo "capture tests ran on $ran extra interpreter(s)"
