#!/usr/bin/env bash
# Sets up mimetic in ./.venv: a CPU build of torch first (torch==2.13.0 lies on these machines'
# disk; a plain `torch` requirement would pull a multi-GB CUDA build), then mimetic itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
