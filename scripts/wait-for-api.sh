#!/usr/bin/env bash
# Waits until `make run`'s API listens on 127.0.0.1:$1 while process $2 (the stack) still
# runs, for at most $3 seconds (default 180). Exits 0 once it listens; otherwise says why on
# stderr and exits 1.
port=$1 stack=$2 seconds=${3:-180}
for _ in $(seq 1 $((seconds * 5))); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0
  kill -0 "$stack" 2>/dev/null || { echo "make run ended before the API answered" >&2; exit 1; }
  sleep 0.2
done
echo "the API did not answer within $seconds s" >&2
exit 1
