#!/usr/bin/env bash
# Serves the API on $API_PORT against the DynamoDB endpoint in $AWS_ENDPOINT_URL_DYNAMODB
# (DynamoDB Local from scripts/with-dynamodb.sh) or, when that is unset, $DYNAMODB_ENDPOINT:
# creates the table if it is missing, runs the functions under `cargo lambda watch`, the
# stream runners, the janitor's scheduler and the gateway, and says how long it took to be
# ready. Logs and the stream checkpoint go to $RUN_DIR (default .run).
# Every listener binds to loopback only: the functions' invoke endpoint trusts the claims in
# the events it is given, so nothing of this stack may be reachable from another machine
# (scripts/test-loopback.sh checks it).
# Ctrl-C, SIGTERM, or any of the services ending, stops them all within a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
started_ns="${RUN_STARTED_NS:-$(date +%s%N)}"
export PATH="$PWD/.tools/venv/bin:$PATH"
export API_PORT="${API_PORT:-3000}"
export LAMBDA_PORT="${LAMBDA_PORT:-9000}"
export TABLE_NAME="${TABLE_NAME:-tidewater}"
export LAMBDA_INVOKE_URL="http://127.0.0.1:$LAMBDA_PORT"
export RUST_LOG="${RUST_LOG:-info}"
# The functions have no default secrets and refuse to start without them (in AWS they read
# them from Secrets Manager); these are the documented local values, never deployed.
export CURSOR_SECRET="${CURSOR_SECRET:-tidewater-local-cursor-secret-do-not-deploy}"
export RECEIPT_SALT="${RECEIPT_SALT:-tidewater-local-receipt-salt-do-not-deploy}"
export HASH_KEY="${HASH_KEY:-tidewater-local-hash-key-do-not-deploy-anywhere}"
# Locally a session moves up the resume list on every second of newer activity.
export RESUME_ORDER_STEP_SECONDS="${RESUME_ORDER_STEP_SECONDS:-1}"
RUN_DIR="${RUN_DIR:-.run}"
export CHECKPOINT_FILE="${CHECKPOINT_FILE:-$RUN_DIR/stream-checkpoint.json}"
if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
  if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
    echo "set DYNAMODB_ENDPOINT (or run me through scripts/with-dynamodb.sh)" >&2
    exit 1
  fi
  export AWS_ENDPOINT_URL_DYNAMODB="$DYNAMODB_ENDPOINT"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  # Without credentials of your own, the dummy ones DynamoDB Local accepts.
  if [ -z "${AWS_ACCESS_KEY_ID:-}${AWS_PROFILE:-}" ] && [ ! -e "${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials}" ]; then
    export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
  fi
fi
mkdir -p "$RUN_DIR"
# The local master key that wraps every data key (crypto-shredding; in AWS a KMS key does),
# made once per run directory: `<id> <base64 of 32 random bytes>` a line. To rotate it, add a
# new line below the old one: the last line wraps new keys, every line unwraps.
MASTER_KEY_FILE="${MASTER_KEY_FILE:-$RUN_DIR/master-key}"
if [ ! -s "$MASTER_KEY_FILE" ]; then
  (umask 077 && echo "local-1 $(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$MASTER_KEY_FILE")
fi
export MASTER_KEYS="${MASTER_KEYS:-$(cat "$MASTER_KEY_FILE")}"

. ./scripts/supervise.sh

echo "building the functions and local tools (cargo build)..."
./scripts/build-local.sh
./target/debug/create-table

# FUNCTION_CONCURRENCY: instances per function; RELOAD_ON_CHANGE=0: no rebuild when code changes.
watch_flags=(--quiet --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" --concurrency "${FUNCTION_CONCURRENCY:-8}")
[ "${RELOAD_ON_CHANGE:-1}" = 1 ] || watch_flags+=(--ignore-changes)
cargo lambda watch "${watch_flags[@]}" >"$RUN_DIR/functions.log" 2>&1 &
children+=($!)
wait_for_port "$LAMBDA_PORT"

./target/debug/stream-runner >"$RUN_DIR/stream-runner.log" 2>&1 &
children+=($!)
STREAM_FUNCTION=sweep-expired CHECKPOINT_FILE="$RUN_DIR/sweep-checkpoint.json" \
  ./target/debug/stream-runner >"$RUN_DIR/sweep-runner.log" 2>&1 &
children+=($!)

# The janitor, as the template's schedule runs it (every minute here).
./target/debug/scheduler >"$RUN_DIR/scheduler.log" 2>&1 &
children+=($!)

./target/debug/gateway &
children+=($!)
wait_for_port "$API_PORT"
cat <<MSG

tidewater is running (ready in $(( ($(date +%s%N) - started_ns) / 1000000000 )) s):
  API        http://127.0.0.1:$API_PORT   (token: make token SUB=alice)
  DynamoDB   $AWS_ENDPOINT_URL_DYNAMODB   table $TABLE_NAME
  functions  $LAMBDA_INVOKE_URL   log $RUN_DIR/functions.log
  stream     log $RUN_DIR/stream-runner.log
  janitor    every ${JANITOR_INTERVAL_SECONDS:-60} s, log $RUN_DIR/scheduler.log
Every port listens on 127.0.0.1 only. Ctrl-C stops everything.
MSG
wait_for_any_child
