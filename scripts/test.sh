#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt -r requirements-test.txt
python3 -m pytest -q "$@" tests
