#!/usr/bin/env bash
# `make chaos REGIONS=2`: `make run REGIONS=...` (scripts/serve-regions.sh: a DynamoDB Local and
# a stack per region, the replicator between them) on ports of its own, then the seeded chaos
# workload spread over the regions while the replicator lags, pauses, takes the first region
# down and fails it over, and the checks in every region (bench/src/chaos/regions.rs).
# REGIONS is a count (2: us-east-1,eu-west-1) or a list of names. The 4N+1 ports start at
# CHAOS_REGIONS_PORT: the APIs, the functions, the regions' DynamoDB endpoints, N each, then
# the replicator's control API and the N DynamoDB Locals behind it. Logs go to
# .run/chaos-regions/. Everything is stopped on the way out, also on Ctrl-C. Expects the
# binaries built. Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${REGIONS:-2}" in
  *,*) regions="$REGIONS" ;;
  2) regions=us-east-1,eu-west-1 ;;
  3) regions=us-east-1,eu-west-1,ap-southeast-2 ;;
  *) echo "REGIONS: 2, 3 or a list of region names" >&2; exit 2 ;;
esac
IFS=, read -r -a names <<<"$regions"
n=${#names[@]}
base="${CHAOS_REGIONS_PORT:-8420}"
run_dir=".run/chaos-regions"
rm -rf "$run_dir"
mkdir -p "$run_dir"

export API_PORT=$base LAMBDA_PORT=$((base + n)) REGIONS_DDB_PORT=$((base + 2 * n)) REPLICATION_PORT=$((base + 3 * n))
export REGIONS_RUN_DIR="$run_dir" HOME_MAP_FILE="$PWD/$run_dir/home-map.json"
export LOCAL_JWT_SECRET="${LOCAL_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export CHAOS_SEED="${CHAOS_SEED:-42}"
# Room for a busy 2-core machine running two stacks: no load should degrade, as no fault hits DynamoDB.
export LOAD_DEADLINE_MS="${LOAD_DEADLINE_MS:-5000}"
export REPLICATION_LAG_MS="${REPLICATION_LAG_MS:-300}" REPLICATION_JITTER_MS="${REPLICATION_JITTER_MS:-700}"
export REPLICATION_SEED="${REPLICATION_SEED:-$CHAOS_SEED}"

source ./scripts/children.sh
for port in $(seq "$base" $((base + 4 * n))); do
  if listening "$port"; then echo "chaos: port $port is taken (set CHAOS_REGIONS_PORT)" >&2; exit 1; fi
done
# serve-regions.sh runs inside a DynamoDB Local per region (scripts/with-dynamodb.sh), each of
# which would wait for what it runs before its own clean-up: stop the whole tree at once.
stop_regions() {
  trap '' INT TERM
  trap - EXIT
  STOP_GRACE_SECONDS=8 ./scripts/stop-processes.sh $(./scripts/descendants.sh "${pids[@]}")
}
trap stop_regions EXIT
echo "chaos: starting $regions (logs $run_dir/)"
REGIONS="$regions" FUNCTION_CONCURRENCY="${FUNCTION_CONCURRENCY:-8}" RELOAD_ON_CHANGE=0 \
  ./scripts/serve-regions.sh >"$run_dir/regions.log" 2>&1 &
pids+=($!)
wait_for_api "chaos" $((API_PORT + n - 1)) "${pids[0]}" "$run_dir/regions.log"

apis=() dynamodb=() logs=()
for i in "${!names[@]}"; do
  apis+=("${names[$i]}=http://127.0.0.1:$((API_PORT + i))")
  dynamodb+=("${names[$i]}=http://127.0.0.1:$((REPLICATION_PORT + 1 + i))")
  logs+=("$run_dir/${names[$i]}/functions.log" "$run_dir/${names[$i]}/stream-runner.log" "$run_dir/${names[$i]}/stack.log")
done
CHAOS_REGION_APIS=$(IFS=,; echo "${apis[*]}") CHAOS_REGION_DYNAMODB=$(IFS=,; echo "${dynamodb[*]}") \
  CHAOS_REPLICATOR="http://127.0.0.1:$REPLICATION_PORT" CHAOS_LOGS="${logs[*]}" \
  CHAOS_REPORT="${CHAOS_REPORT:-bench/chaos-regions}" \
  AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$((REPLICATION_PORT + 1))" AWS_REGION="${names[0]}" \
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
  ./target/debug/chaos
