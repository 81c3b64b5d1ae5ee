# Sourced by the scripts that start a stack of their own (chaos.sh, test-python-client.sh):
# `pids+=($!)` registers a child; on the way out, also on Ctrl-C, the children are stopped
# newest first, each given the time its own clean-up takes. `listening PORT` tells whether
# something listens on that loopback port; `wait_for_api WHO PORT PID LOG` waits for the
# stack PID to serve its API on PORT, and ends the script with LOG's tail if it never does.
pids=()
children_root="$PWD"
stop_children() {
  trap '' INT TERM
  trap - EXIT
  local index
  for ((index = ${#pids[@]} - 1; index >= 0; index--)); do
    STOP_GRACE_SECONDS=8 "$children_root/scripts/stop-processes.sh" "${pids[index]}"
  done
}
trap stop_children EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for_api() {
  local who=$1 port=$2 pid=$3 log=$4
  for _ in $(seq 1 1500); do
    listening "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$who: the API did not come up" >&2
  exit 1
}
