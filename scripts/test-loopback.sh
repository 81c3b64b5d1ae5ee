#!/usr/bin/env bash
# Nothing of the local stack is reachable from another machine: starts `make run` (in a
# session of its own, on free ports) and the fault proxy, waits until a function has served a
# request, then fails if any TCP socket that any of their processes listens on is bound to an
# address outside loopback (127.0.0.0/8, ::1). Reads /proc/<pid>/fd and /proc/net/tcp{,6}.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
log=.run/test-loopback.log
read -r api_port ddb_port lambda_port proxy_port < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(4)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')

setsid make --no-print-directory run API_PORT="$api_port" DDB_PORT="$ddb_port" LAMBDA_PORT="$lambda_port" \
  >"$log" 2>&1 </dev/null &
group=$!
FAULT_PROXY_PORT="$proxy_port" FAULT_UPSTREAM="http://127.0.0.1:$ddb_port" ./target/debug/fault-proxy >>"$log" 2>&1 &
proxy=$!
# As Ctrl-C stops make run (the function instances live in sessions of their own), then
# whatever is left.
stop() {
  local left
  left=$(./scripts/descendants.sh "$group" "$proxy")
  kill -INT -- "-$group" 2>/dev/null || true
  kill -TERM "$proxy" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 $left 2>/dev/null || break; sleep 0.1; done
  ./scripts/stop-processes.sh $left
}
trap stop EXIT
fail() { echo "test-loopback: $*" >&2; echo "--- $log" >&2; tail -n 30 "$log" >&2; exit 1; }

./scripts/wait-for-api.sh "$api_port" "$group" || fail "no API"
token=$(API_PORT="$api_port" ./target/debug/token loopback-test "")
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$api_port/sessions" \
  -H "authorization: Bearer $token" -d '{}')
[ "$status" = 201 ] || fail "POST /sessions answered $status, not 201"

pids=($(./scripts/descendants.sh "$group") "$proxy")
python3 - "${pids[@]}" <<'PY' || fail "a listener is reachable beyond loopback"
import ipaddress, os, sys

def address(hex_address, family):
    raw = bytes.fromhex(hex_address)
    if family == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc/net/tcp6 holds four 32-bit words, each in host (little-endian) order.
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))

def loopback(ip):
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback

owners = {}
for pid in sys.argv[1:]:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                owners.setdefault(target[8:-1], set()).add(pid)
    except OSError:
        pass  # ended meanwhile

found, exposed = [], []
for family, table in ((4, "/proc/net/tcp"), (6, "/proc/net/tcp6")):
    with open(table) as rows:
        next(rows)
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in owners:  # 0A: LISTEN
                continue
            hex_address, hex_port = local.split(":")
            ip, port = address(hex_address, family), int(hex_port, 16)
            for pid in sorted(owners[inode]):
                with open(f"/proc/{pid}/comm") as comm:
                    entry = f"{comm.read().strip()} (pid {pid}) on {ip}:{port}"
                (found if loopback(ip) else exposed).append(entry)
for entry in found:
    print(f"test-loopback: loopback only: {entry}")
for entry in exposed:
    print(f"test-loopback: REACHABLE FROM THE NETWORK: {entry}", file=sys.stderr)
if not found and not exposed:
    sys.exit("test-loopback: no listening socket found; the check saw nothing")
sys.exit(1 if exposed else 0)
PY
echo "test-loopback: every listener of the local stack (${#pids[@]} processes) is bound to loopback"
