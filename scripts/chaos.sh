#!/usr/bin/env bash
# `make chaos`: DynamoDB Local, the fault proxy in front of it, and the whole local stack with
# the functions and the stream runner pointed at the proxy; then the seeded workload and its
# checks (target/debug/chaos, see bench/src/chaos/main.rs for its variables). Everything is
# on free loopback ports and stopped on the way out, also on Ctrl-C. Expects the binaries
# built (`make chaos` and `make test` build them). Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir="$PWD/.run/chaos"

if [ "${1:-}" != "--inside" ]; then
  rm -rf "$run_dir"
  mkdir -p "$run_dir"
  read -r ddb_port ports < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(4)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
  export CHAOS_PORTS="$ports"
  DDB_PORT="$ddb_port" DDB_LOG="$run_dir/dynamodb.log" exec ./scripts/with-dynamodb.sh "$0" --inside
fi

read -r proxy_port api_port lambda_port <<<"$CHAOS_PORTS"
direct="$AWS_ENDPOINT_URL_DYNAMODB"
export CHAOS_SEED="${CHAOS_SEED:-42}"
# Rates high enough that the SDK's three attempts are sometimes not enough, so clients see 503s.
# Stale reads: an eventually consistent GetItem or Query answered as a replica FAULT_STALE_MS
# behind would (local/src/stale.rs); a stale answer is no fault to the project, so it degrades nothing.
export FAULT_PLAN="${FAULT_PLAN:-throughput_exceeded=0.05, throttling=0.05, internal_error=0.04, latency=0.03, reset=0.04, lost_answer@TransactWriteItems|PutItem|UpdateItem|DeleteItem|BatchWriteItem=0.05, stale@GetItem|Query=0.3}"
export FAULT_STALE_MS="${FAULT_STALE_MS:-2000}"
# A latency fault outlasts the load deadline, so it degrades a context load; the deadline
# leaves room for a busy 2-core machine, so that nothing but faults does.
export FAULT_LATENCY_MS="${FAULT_LATENCY_MS:-2500}"
export LOAD_DEADLINE_MS="${LOAD_DEADLINE_MS:-2000}"

# The stack first, with the time its own clean-up takes, then the proxy.
source ./scripts/children.sh

FAULT_PROXY_PORT="$proxy_port" FAULT_UPSTREAM="$direct" FAULT_SEED="$CHAOS_SEED" \
  ./target/debug/fault-proxy >"$run_dir/fault-proxy.log" 2>&1 &
pids+=($!)
until listening "$proxy_port"; do kill -0 "${pids[0]}" || exit 1; sleep 0.1; done
# Off while the stack starts; the workload switches the faults on.
curl -s -o /dev/null -X POST "http://127.0.0.1:$proxy_port/_fault-proxy/off"

echo "chaos: starting the local stack against the fault proxy (log $run_dir/stack.log)"
env -u AWS_ENDPOINT_URL_DYNAMODB DYNAMODB_ENDPOINT="http://127.0.0.1:$proxy_port" \
  API_PORT="$api_port" LAMBDA_PORT="$lambda_port" RUN_DIR="$run_dir" FUNCTION_CONCURRENCY="${FUNCTION_CONCURRENCY:-16}" RELOAD_ON_CHANGE=0 \
  RUST_LOG="info,aws_smithy_runtime::client::retries=debug" \
  ./scripts/serve-local.sh >"$run_dir/stack.log" 2>&1 &
pids+=($!)
wait_for_api "chaos" "$api_port" "${pids[1]}" "$run_dir/stack.log"

API_PORT="$api_port" CHAOS_API="http://127.0.0.1:$api_port" CHAOS_PROXY="http://127.0.0.1:$proxy_port" \
  CHAOS_LOGS="$run_dir/functions.log $run_dir/stream-runner.log $run_dir/stack.log" \
  ./target/debug/chaos
