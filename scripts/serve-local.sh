#!/usr/bin/env bash
# Serves the API on $API_PORT against the DynamoDB Local that scripts/with-dynamodb.sh
# started: creates the table, runs the functions under `cargo lambda watch`, the stream
# runner and the gateway. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
export API_PORT="${API_PORT:-3000}"
export LAMBDA_PORT="${LAMBDA_PORT:-9000}"
export TABLE_NAME="${TABLE_NAME:-tidewater}"
export LAMBDA_INVOKE_URL="http://127.0.0.1:$LAMBDA_PORT"
export RUST_LOG="${RUST_LOG:-info}"
# Locally a session moves up the resume list on every second of newer activity.
export RESUME_ORDER_STEP_SECONDS="${RESUME_ORDER_STEP_SECONDS:-1}"
mkdir -p .run

children=()
stop() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

wait_for_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing is listening on port $1" >&2
  return 1
}

echo "building the functions and local tools..."
cargo build --quiet --workspace --bins
./target/debug/create-table

cargo lambda watch --quiet --invoke-port "$LAMBDA_PORT" --concurrency 8 >.run/functions.log 2>&1 &
children+=($!)
wait_for_port "$LAMBDA_PORT"

if [ -x ./target/debug/stream-runner ]; then
  ./target/debug/stream-runner >.run/stream-runner.log 2>&1 &
  children+=($!)
  STREAM_FUNCTION=sweep-expired CHECKPOINT_FILE=.run/sweep-checkpoint.json \
    ./target/debug/stream-runner >.run/sweep-runner.log 2>&1 &
  children+=($!)
fi

./target/debug/gateway &
children+=($!)
wait_for_port "$API_PORT"
cat <<MSG

tidewater is running:
  API             http://127.0.0.1:$API_PORT   (token: make token SUB=alice)
  DynamoDB Local  $AWS_ENDPOINT_URL_DYNAMODB   table $TABLE_NAME
  functions       $LAMBDA_INVOKE_URL           log .run/functions.log
Ctrl-C stops everything.
MSG
wait
