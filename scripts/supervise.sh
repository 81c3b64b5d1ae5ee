# Sourced by the scripts that start `make run`'s services: `children` holds what they start;
# Ctrl-C, SIGTERM or the script's end stops all of them and what runs under them.
# `wait_for_port P` waits until something listens on P, failing when every child has ended.
children=()
stop() {
  trap '' INT TERM # a second Ctrl-C must not cut the clean-up short
  trap - EXIT
  [ ${#children[@]} -eq 0 ] || ./scripts/stop-processes.sh $(./scripts/descendants.sh "${children[@]}")
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_port() {
  for _ in $(seq 1 "${WAIT_FOR_PORT_TRIES:-600}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "${children[@]}" 2>/dev/null || break
    sleep 0.2
  done
  echo "nothing is listening on port $1" >&2
  return 1
}

# Until Ctrl-C, or until one of the children ends: then the others are stopped too.
wait_for_any_child() {
  local status=0
  wait -n "${children[@]}" || status=$?
  echo "a local service ended (status $status); stopping the others" >&2
  exit "$status"
}
