#!/usr/bin/env bash
# Stops the given processes: SIGTERM, then SIGKILL to whatever still runs after
# $STOP_GRACE_SECONDS (default 3). A zombie counts as stopped.
[ $# -gt 0 ] || exit 0
running() {
  local pid
  for pid in "$@"; do
    [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
  done
  return 1
}
kill -TERM "$@" 2>/dev/null
for _ in $(seq 1 $((${STOP_GRACE_SECONDS:-3} * 10))); do
  running "$@" || exit 0
  sleep 0.1
done
kill -KILL "$@" 2>/dev/null
exit 0
