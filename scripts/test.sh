#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt -r requirements-test.txt
# Independent oracle for the clip/ parity tests: OpenAI's CLIP code as packaged
# by clip-anytorch. Fetched as a wheel and imported under another name by the
# tests (it would otherwise shadow our clip/ package); never installed.
if ! ls .oracles/clip_anytorch-2.6.0-*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps clip-anytorch==2.6.0 -d .oracles
fi
# Lint first (pyproject.toml): a finding fails the run, as in CI.
python3 -m ruff check .
python3 -m pytest -q -n 2 "$@" tests
