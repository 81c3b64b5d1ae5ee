#!/usr/bin/env bash
# Fuzzes the HTTP API from outside with schemathesis, against openapi.yaml: every operation,
# every check, as a customer, as `support` and as `privacy`, with a fixed seed and a bounded
# number of examples per operation. It fails unless every run ends with zero failures.
#
#   scripts/fuzz.sh          against the API that `make run` serves on $API_PORT
#   FUZZ_OWN_STACK=1 scripts/fuzz.sh
#                            starts `make run` itself on $API_PORT, $DDB_PORT and $LAMBDA_PORT
#                            (in a process group of its own), and stops all of it afterwards
#
# FUZZ_EXAMPLES (examples per operation and phase) and FUZZ_SEED choose the run; the
# schemathesis logs and reports land in .run/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
API_PORT="${API_PORT:-3000}"
FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-100}"
FUZZ_SEED="${FUZZ_SEED:-20261126}"
API="http://127.0.0.1:$API_PORT"
OUT=.run/fuzz
mkdir -p "$OUT"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stack_pgid=""
stop_stack() {
  [ -n "$stack_pgid" ] || return 0
  kill -TERM -- "-$stack_pgid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 -- "-$stack_pgid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL -- "-$stack_pgid" 2>/dev/null || true
}

if [ "${FUZZ_OWN_STACK:-0}" = 1 ]; then
  for port in "$API_PORT" "${DDB_PORT:?set DDB_PORT}" "${LAMBDA_PORT:?set LAMBDA_PORT}"; do
    if port_open "$port"; then echo "fuzz: port $port is already in use" >&2; exit 1; fi
  done
  trap stop_stack EXIT INT TERM
  echo "fuzz: starting the local stack on port $API_PORT (log $OUT/stack.log)"
  # setsid: the stack gets a process group of its own, so that stopping it stops every process in it.
  # RELOAD_ON_CHANGE=0: a build beside it (CI's `make build`) must not restart its functions
  # in the middle of a request, as every other test stack already ensures.
  API_PORT="$API_PORT" DDB_PORT="$DDB_PORT" LAMBDA_PORT="$LAMBDA_PORT" RELOAD_ON_CHANGE=0 \
    setsid make --no-print-directory run API_PORT="$API_PORT" DDB_PORT="$DDB_PORT" >"$OUT/stack.log" 2>&1 </dev/null &
  stack_pgid=$!
  for _ in $(seq 1 1800); do
    port_open "$API_PORT" && break
    kill -0 "$stack_pgid" 2>/dev/null || { echo "fuzz: the local stack stopped; see $OUT/stack.log" >&2; tail -n 20 "$OUT/stack.log" >&2; exit 1; }
    sleep 0.5
  done
fi
port_open "$API_PORT" || { echo "fuzz: nothing serves $API; start it with make run" >&2; exit 1; }

./scripts/warm-functions.sh "$API"

failed=0
for role in customer support privacy; do
  case "$role" in
    customer) sub=fuzz-customer groups="" ;;
    support) sub=fuzz-support groups=support ;;
    privacy) sub=fuzz-privacy groups=privacy ;;
  esac
  token=$(make -s --no-print-directory token SUB="$sub" GROUPS="$groups")
  echo "fuzz: $role, $FUZZ_EXAMPLES examples per operation, seed $FUZZ_SEED"
  if schemathesis --config-file schemathesis.toml run openapi.yaml \
      --url "$API" \
      --header "Authorization: Bearer $token" \
      --checks all \
      --max-examples "$FUZZ_EXAMPLES" \
      --seed "$FUZZ_SEED" \
      --generation-database none \
      --no-color \
      --report junit --report-junit-path "$OUT/$role.junit.xml" \
      >"$OUT/$role.log" 2>&1; then
    tail -n 3 "$OUT/$role.log"
  else
    failed=1
    echo "fuzz: $role FAILED; the last lines of $OUT/$role.log:" >&2
    tail -n 60 "$OUT/$role.log" >&2
  fi
done
exit "$failed"
