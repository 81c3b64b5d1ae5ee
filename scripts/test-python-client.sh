#!/usr/bin/env bash
# The Python client's checks: ruff and mypy over clients/python, then its pytest suite against
# a real local stack started here (DynamoDB Local, the fault proxy in front of it with its
# faults off until a test switches them on, the functions, the stream runner and the gateway),
# stopped on the way out, also on Ctrl-C. Expects the binaries built (`make test` builds them).
#
#   PY_API_PORT, PY_DDB_PORT, PY_PROXY_PORT, PY_LAMBDA_PORT   the stack's ports
#   PYTEST_ARGS                                             extra pytest arguments (-k ...)
#   PY_RUN=bench            runs clients/python/bench/compare.py instead of the tests
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir="$PWD/.run/python-client"
PY="$PWD/.tools/pyclient/bin"

if [ "${1:-}" != "--inside" ]; then
  ./scripts/install-python-tools.sh
  (cd clients/python && "$PY/ruff" check src tests bench && "$PY/ruff" format --check src tests bench && "$PY/mypy")
  rm -rf "$run_dir"
  mkdir -p "$run_dir"
  DDB_PORT="${PY_DDB_PORT:-8768}" DDB_LOG="$run_dir/dynamodb.log" exec ./scripts/with-dynamodb.sh "$0" --inside
fi

proxy_port="${PY_PROXY_PORT:-8769}" api_port="${PY_API_PORT:-3766}" lambda_port="${PY_LAMBDA_PORT:-9766}"
direct="$AWS_ENDPOINT_URL_DYNAMODB"
source ./scripts/children.sh
for port in "$proxy_port" "$api_port" "$lambda_port"; do
  if listening "$port"; then echo "python client tests: port $port is already in use" >&2; exit 1; fi
done

# What the retry tests switch on: a share of the appends' transactions answered 3 s late
# (applied, but the client's 1 s timeout drops the answer), or failed outright often enough
# that the function's own retries give up and answer 503.
FAULT_PROXY_PORT="$proxy_port" FAULT_UPSTREAM="$direct" FAULT_SEED=7 FAULT_LATENCY_MS=3000 \
  FAULT_PLAN="latency@TransactWriteItems=0.2, internal_error@TransactWriteItems=0.6" \
  ./target/debug/fault-proxy >"$run_dir/fault-proxy.log" 2>&1 &
pids+=($!)
until listening "$proxy_port"; do kill -0 "${pids[0]}" || exit 1; sleep 0.1; done
curl -s -o /dev/null -X POST "http://127.0.0.1:$proxy_port/_fault-proxy/off"

# The stack and the tests' token minter share a secret made for this run.
export LOCAL_JWT_SECRET="${LOCAL_JWT_SECRET:-$(head -c 32 /dev/urandom | base64 | tr -d '\n')}"
echo "python client tests: starting the local stack on port $api_port (log $run_dir/stack.log)"
env -u AWS_ENDPOINT_URL_DYNAMODB DYNAMODB_ENDPOINT="http://127.0.0.1:$proxy_port" \
  API_PORT="$api_port" LAMBDA_PORT="$lambda_port" RUN_DIR="$run_dir" RELOAD_ON_CHANGE=0 \
  ./scripts/serve-local.sh >"$run_dir/stack.log" 2>&1 &
pids+=($!)
wait_for_api "python client tests" "$api_port" "${pids[1]}" "$run_dir/stack.log"
./scripts/warm-functions.sh "http://127.0.0.1:$api_port"

cd clients/python
export TIDEWATER_API="http://127.0.0.1:$api_port" TIDEWATER_FAULT_PROXY="http://127.0.0.1:$proxy_port" \
  TIDEWATER_DYNAMODB="$direct" TIDEWATER_TOKEN_BIN="$OLDPWD/target/debug/token"
status=0
if [ "${PY_RUN:-test}" = bench ]; then
  PYTHONPATH=src "$PY/python" bench/compare.py || status=$?
else
  "$PY/pytest" -q -p no:cacheprovider ${PYTEST_ARGS:-} || status=$?
fi
cd "$OLDPWD"
exit "$status"
