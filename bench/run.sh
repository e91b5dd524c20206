#!/usr/bin/env bash
# Reproduce the benchmark figures: our replay proxy beside benchflow's (0.7.11 from PyPI, installed into its
# own virtual environment, never the project's), and batch discovery. Prints a table, writes results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh > /dev/null
BF=bench/.venv-benchflow
if ! "$BF/bin/python" -c "import benchflow" 2>/dev/null; then
  PY=$(.venv/bin/python -c "from benchflow_continue.agents.openhands import find_python; print(find_python())" 2>/dev/null || true)
  if [ -n "$PY" ]; then
    echo "bench: installing benchflow==0.7.11 into $BF (once)"
    rm -rf "$BF"
    ("$PY" -m venv "$BF" && "$BF/bin/pip" install --quiet --disable-pip-version-check benchflow==0.7.11 2>&1 | grep -v "^WARNING: Location") || true
  fi
fi
if "$BF/bin/python" -c "import benchflow" 2>/dev/null; then
  .venv/bin/python bench/report.py --benchflow-python "$BF/bin/python"
else
  echo "bench: benchflow could not be installed (it needs Python >= 3.12 and PyPI); our figures alone"
  .venv/bin/python bench/report.py
fi
