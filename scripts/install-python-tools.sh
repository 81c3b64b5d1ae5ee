#!/usr/bin/env bash
# Installs the Python client's test tools into a virtual environment of their own,
# .tools/pyclient/ (kept apart from .tools/venv, whose SAM CLI and schemathesis pin other
# versions of the same libraries): the frameworks the adapters implement, the linters and
# the runner, each pinned. The client itself is not installed: its tests and mypy read it from
# clients/python/src, so the environment serves every checkout alike. Idempotent: prints one
# line when it installs, and nothing when all is there. Called by scripts/install-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$PWD/.tools/pyclient"

# The client's own dependency (httpx, in clients/python/pyproject.toml) and the test and
# comparison tools. langchain-community and boto3 run the comparison with
# LangChain's own DynamoDB history (clients/python/bench/compare.py).
PY_CLIENT_TOOLS=(
  "httpx==0.28.1" "langchain-core==1.8.1" "langgraph==1.2.22" "openai-agents==0.24.0"
  "pytest==9.2.0" "pytest-asyncio==1.5.0" "ruff==0.17.5" "mypy==2.4.1"
  "langchain-community==0.4.2" "boto3==1.44.5"
)
wanted="${PY_CLIENT_TOOLS[*]}"

if [ ! -x "$VENV/bin/python" ]; then
  printf 'installing a Python virtual environment for the client into .tools/pyclient ...'
  python3 -m venv "$VENV"
  echo ' done'
fi
if [ ! -f "$VENV/.installed" ] || [ "$(cat "$VENV/.installed")" != "$wanted" ]; then
  started=$SECONDS
  printf 'installing the Python client'"'"'s test tools (PyPI: %s) ...' "${PY_CLIENT_TOOLS[*]}"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_CLIENT_TOOLS[@]}"
  printf ' done (%d s)\n' $((SECONDS - started))
  echo "$wanted" > "$VENV/.installed"
fi
