#!/usr/bin/env bash
# `make run REGIONS=us-east-1,eu-west-1`: one DynamoDB Local per region, the replicator in
# front of them (local/src/replicator/), and one stack per region exactly as `make run`
# starts it (scripts/serve-local.sh), the Nth region (0-based) on API_PORT+N, DDB_PORT+N and
# LAMBDA_PORT+N, all with the same secrets. DDB_PORT+N is the region's DynamoDB endpoint (the
# replicator's proxy); its DynamoDB Local listens on REPLICATION_PORT+1+N, and the control API
# on REPLICATION_PORT. Logs go to .run/<region>/ (REGIONS_RUN_DIR/<region>/ when set).
# Ctrl-C, SIGTERM, or any of them ending, stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
IFS=, read -r -a regions <<<"$REGIONS"
run_dir="${REGIONS_RUN_DIR:-.run}"
export REPLICATION_PORT="${REPLICATION_PORT:-8400}"
API_PORT="${API_PORT:-3000}" LAMBDA_PORT="${LAMBDA_PORT:-9000}"
# Kept apart from DDB_PORT, which scripts/with-dynamodb.sh is given for each DynamoDB Local.
export REGIONS_DDB_PORT="${REGIONS_DDB_PORT:-${DDB_PORT:-8000}}"

# The regions' DynamoDB Locals, each started inside the one before by scripts/with-dynamodb.sh,
# which stops it on the way out.
started="${REGIONS_DDB_STARTED:-0}"
if [ "$started" -lt "${#regions[@]}" ]; then
  mkdir -p "$run_dir/${regions[$started]}"
  REGIONS_DDB_STARTED=$((started + 1)) DDB_PORT=$((REPLICATION_PORT + 1 + started)) \
    DDB_LOG="$run_dir/${regions[$started]}/dynamodb.log" exec ./scripts/with-dynamodb.sh "$0"
fi

. ./scripts/supervise.sh

echo "building the functions and local tools (cargo build)..."
cargo build --locked --workspace --bins
# Every stack knows every region's API and reads the one home map (`make failover` rewrites
# it): a request whose home is another region is forwarded there (local/src/homing.rs), and
# stream work runs only in a session's home (tidewater::home).
apis=()
for n in "${!regions[@]}"; do apis+=("${regions[$n]}=http://127.0.0.1:$((API_PORT + n))"); done
export REGION_APIS=$(IFS=,; echo "${apis[*]}") REPLICATION_URL="http://127.0.0.1:$REPLICATION_PORT"
export HOME_MAP_FILE="${HOME_MAP_FILE:-$PWD/$run_dir/home-map.json}"
# One token secret for every region's gateway, since a forwarded request carries its token to
# the home; written where `make token API_PORT=<any region's port>` reads it, owner-only.
if [ -z "${LOCAL_JWT_SECRET:-}" ]; then
  LOCAL_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
export LOCAL_JWT_SECRET
# One master key for every region too (on AWS, a multi-region KMS key): a data key wrapped in
# one region replicates to the others, which must unwrap it after a failover. The first
# region's scripts/serve-local.sh makes it; the others, started after, read it.
export MASTER_KEY_FILE="${MASTER_KEY_FILE:-$PWD/$run_dir/master-key}"
for n in "${!regions[@]}"; do
  (umask 077; printf '%s' "$LOCAL_JWT_SECRET" >".run/gateway-$((API_PORT + n)).secret")
done
# Each run starts with every region home to its own slots.
echo '{"epoch": 0, "moved": {}}' >"$HOME_MAP_FILE"
replicas=()
for n in "${!regions[@]}"; do
  replicas+=("${regions[$n]}@$((REGIONS_DDB_PORT + n))=http://127.0.0.1:$((REPLICATION_PORT + 1 + n))")
done
# A purge reads every other region's replica before its receipt: each region's endpoint. The
# replication window a purge waits (PURGE_SETTLE_SECONDS) bounds the replicator's lag here,
# REPLICATION_LAG_MS plus REPLICATION_JITTER_MS (1 s by default).
endpoints=()
for n in "${!regions[@]}"; do
  endpoints+=("${regions[$n]}=http://127.0.0.1:$((REGIONS_DDB_PORT + n))")
done
REGION_ENDPOINTS=$(IFS=,; echo "${endpoints[*]}")
export REGION_ENDPOINTS PURGE_SETTLE_SECONDS="${PURGE_SETTLE_SECONDS:-5}"
REPLICAS=$(IFS=,; echo "${replicas[*]}") ./target/debug/replicator >"$run_dir/replicator.log" 2>&1 &
children+=($!)
wait_for_port "$REPLICATION_PORT"

for n in "${!regions[@]}"; do
  region="${regions[$n]}"
  AWS_REGION="$region" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$((REGIONS_DDB_PORT + n))" RUN_DIR="$run_dir/$region" \
    API_PORT=$((API_PORT + n)) LAMBDA_PORT=$((LAMBDA_PORT + n)) \
    REGION_STATUS_URL="http://127.0.0.1:$REPLICATION_PORT/regions/$region" \
    ./scripts/serve-local.sh >"$run_dir/$region/stack.log" 2>&1 &
  children+=($!)
  # One at a time, so that only the first stack's build does any work.
  WAIT_FOR_PORT_TRIES=1500 wait_for_port $((API_PORT + n))
  echo "$region: API http://127.0.0.1:$((API_PORT + n)), DynamoDB http://127.0.0.1:$((REGIONS_DDB_PORT + n)), functions :$((LAMBDA_PORT + n)), logs $run_dir/$region/"
done
cat <<MSG

tidewater is running in ${#regions[@]} regions (ready in $(( ($(date +%s%N) - ${RUN_STARTED_NS:-$(date +%s%N)}) / 1000000000 )) s):
  replication  http://127.0.0.1:$REPLICATION_PORT/status   log $run_dir/replicator.log
               POST /pause, /resume (?from=&to=), /regions/<region>/down, /up
Ctrl-C stops everything.
MSG
wait_for_any_child
