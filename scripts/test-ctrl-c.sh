#!/usr/bin/env bash
# Ctrl-C stops all of `make run`: starts it in a process group of its own with SIGINT at its
# default (as a terminal's foreground job), on free ports, waits until the API answers and a
# function has served a request, sends SIGINT to the group, and fails unless every process it
# started (the function instances too, which live in sessions of their own) and every port it
# listened on is gone within 5 s. `make test` builds the binaries first, so `make run`'s own
# build finds nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
log=.run/test-ctrl-c.log
read -r api_port ddb_port lambda_port < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
ports=("$api_port" "$ddb_port" "$lambda_port")
started=()

# A new session, so the group can be signalled as a whole and nothing of it can hide in ours.
python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
os.setsid()
os.execvp("make", sys.argv[1:])' make --no-print-directory run \
  API_PORT="$api_port" DDB_PORT="$ddb_port" LAMBDA_PORT="$lambda_port" >"$log" 2>&1 &
group=$!

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
members() { ps -o pid=,stat= -s "$group" | awk '$2 !~ /^Z/ {print $1}' || true; }
fail() {
  echo "test-ctrl-c: $*" >&2
  ps -o pid,args -s "$group" >&2 || true
  [ ${#started[@]} -eq 0 ] || ps -o pid,args -p "$(IFS=,; echo "${started[*]}")" >&2 || true
  echo "--- $log" >&2
  tail -n 30 "$log" >&2
  kill -KILL -- -"$group" 2>/dev/null || true
  [ ${#started[@]} -eq 0 ] || kill -KILL "${started[@]}" 2>/dev/null || true
  exit 1
}

./scripts/wait-for-api.sh "$api_port" "$group" || fail "no API"
token=$(API_PORT="$api_port" ./target/debug/token ctrl-c-test "")
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$api_port/sessions" \
  -H "authorization: Bearer $token" -d '{}')
[ "$status" = 201 ] || fail "POST /sessions answered $status, not 201"
# Everything make run started, also the function instances in sessions of their own.
started=($(./scripts/descendants.sh "$group"))
echo "test-ctrl-c: make run is up with ${#started[@]} processes; sending SIGINT to its group"

kill -INT -- -"$group"
alive() { for pid in "${started[@]}"; do [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"; done; true; }
for _ in $(seq 1 50); do
  left=$( (members; alive) | sort -u)
  busy=()
  for port in "${ports[@]}"; do listening "$port" && busy+=("$port"); done
  if [ -z "$left" ] && [ ${#busy[@]} -eq 0 ]; then
    echo "test-ctrl-c: every process and port of make run was gone within 5 s"
    exit 0
  fi
  sleep 0.1
done
fail "5 s after SIGINT, still running: $(echo $left); ports still taken: ${busy[*]:-none}"
